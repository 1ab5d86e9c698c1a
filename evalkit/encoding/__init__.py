"""The encoder and everything it owns (encoder, prompt, model, pooling, packing, batching, cache, fingerprint, meta).

Importing it checks the torch and transformers floors first (`evalkit.versions`): an older transformers would
ignore `dtype=` and load float16 weights as float32 without a word.
"""

from evalkit.versions import require

require("torch", "transformers")
