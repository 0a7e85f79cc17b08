"""Ablation studies: a plan written first (plan), one folder per trial (trial), an engine running them (engine), the
table read back from the trainers' own outputs (report)."""
