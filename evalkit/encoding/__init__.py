"""The encoder and everything it owns (encoder, prompt, model, pooling, packing, batching, cache, fingerprint, meta).

Importing it checks the torch and transformers floors first (`evalkit.versions`): one line naming the package
to upgrade instead of a TypeError deep inside transformers (which takes `dtype=` from 4.56 on).
"""

from evalkit.versions import require

require("torch", "transformers")
