"""The CI regression gate on embedding quality: `python -m evalkit.check suite=<name>`.

A suite (`conf/check/<name>.yaml`) says what to measure; its baseline
(`conf/check/baselines/<name>.json`, beside it) says what the measurements were. Golden embeddings of fixed
probe texts are compared first (seconds), then the task scores (minutes).
"""
