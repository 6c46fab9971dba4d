"""Raw video -> CLIP/CLAP segment features in the UWAV layout (optional extra: pip install -e .[extract])."""
