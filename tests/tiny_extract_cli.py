"""`python tests/tiny_extract_cli.py extract|parse ...`: the real `uwav` CLI in its own process, with the
CLAP text tower shrunk to test_extract's tiny RoBERTa (the CLI has no option for it, and roberta-base with
random weights would cost minutes on 2 cores). Everything else (decoding, the CLIP config given with
--clip-config, the error boundary, signals) is the CLI's own."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_extract import TINY_ROBERTA  # noqa: E402

import uwav.extract.run as run  # noqa: E402
from uwav.cli import main  # noqa: E402

_load_clap = run.load_clap


def _tiny_text_clap(checkpoint, tokenizer, audio_model, fusion, device, text_config=None):
    return _load_clap(checkpoint, tokenizer, audio_model, fusion, device, TINY_ROBERTA)


run.load_clap = _tiny_text_clap

# UWAV_TEST_DECODE_SECONDS: each decode takes at least that long, so a test's signal lands while videos
# are still to come however fast the tiny models are and however late the test process gets the CPU.
_decode_video, _decode_seconds = run.decode_video, float(os.environ.get("UWAV_TEST_DECODE_SECONDS", "0"))


def _slow_decode(path, segments):
    time.sleep(_decode_seconds)
    return _decode_video(path, segments)


if _decode_seconds > 0:
    run.decode_video = _slow_decode

if __name__ == "__main__":
    main(prog_name="uwav")
