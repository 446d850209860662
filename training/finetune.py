"""`python -m training.finetune RUN ...`: context-shift evaluation or fine-tuning of a run.

The command of docs/OFFLINE.md and BENCHMARKS.md; its CLI is training/cli.py
`finetune_main`, the fine-tuning loop training/algos/offline_pearl/finetune.py and the
context-shift evaluation `training.evaluate.context_eval`.
"""

from training.cli import finetune_main

if __name__ == "__main__":
    raise SystemExit(finetune_main())
