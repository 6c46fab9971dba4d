"""`python tests/tiny_extract_cli.py extract|parse ...`: the real `uwav` CLI in its own process, with the
CLAP text tower shrunk to test_extract's tiny RoBERTa (the CLI has no option for it, and roberta-base with
random weights would cost minutes on 2 cores). Everything else (decoding, the CLIP config given with
--clip-config, the error boundary, signals) is the CLI's own."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_extract import TINY_ROBERTA  # noqa: E402

import uwav.extract.run as run  # noqa: E402
from uwav.cli import main  # noqa: E402

_load_clap = run.load_clap


def _tiny_text_clap(checkpoint, tokenizer, audio_model, fusion, device, text_config=None):
    return _load_clap(checkpoint, tokenizer, audio_model, fusion, device, TINY_ROBERTA)


run.load_clap = _tiny_text_clap

if __name__ == "__main__":
    main(prog_name="uwav")
