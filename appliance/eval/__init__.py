"""Evaluation before release: an adapter against its base model on the task, the general suite, a local
judge and canary leakage, with a gate verdict from the release policy."""
