"""``export`` from each form a run leaves, and the check that transformers gives our numbers."""

from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModel, LukeForMaskedLM

from lightning_kg.data.datamodule import KnowledgeDataModule
from lightning_kg.export import export
from lightning_kg.model.checkpoint import load_checkpoint_model
from lightning_kg.model.config import ObjectiveSettings
from lightning_kg.model.pretraining import KnowledgePretrainingModel
from lightning_kg.train.module import KnowledgePretraining

DEMO = str(Path(__file__).resolve().parents[1] / "shards" / "demo")
ENCODER_INPUTS = ("input_ids", "attention_mask", "entity_ids", "entity_position_ids", "entity_attention_mask")


def demo_batch(size: int = 2) -> dict[str, torch.Tensor]:
    batch = next(iter(KnowledgeDataModule(DEMO, num_workers=0, batch_size=size).val_dataloader()))
    return {k: batch[k] for k in ENCODER_INPUTS}


def assert_export_matches(out: Path, model: KnowledgePretrainingModel, inputs: dict[str, torch.Tensor]) -> None:
    """``LukeForMaskedLM`` from ``out`` gives our word and entity logits, ``AutoModel`` our word and
    entity states (fp32, 1e-4), and both load with no missing or unexpected key beyond the heads."""
    hf, info = LukeForMaskedLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    base, info = AutoModel.from_pretrained(out, output_loading_info=True)
    assert type(base).__name__ == "LukeModel" and not info["missing_keys"]
    model = model.eval()
    with torch.no_grad():
        theirs, their_states = hf.eval()(**inputs), base.eval()(**inputs)
        ours = model.encoder(*(inputs[k] for k in ENCODER_INPUTS))
        words = model.mlm_head(ours.word_hidden, model.encoder.embeddings.word.weight)
        entities = model.entity_head(ours.entity_hidden) @ model.encoder.entity_embeddings.table.weight.t() + model.entity_head.bias
    torch.testing.assert_close(theirs.logits, words, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(theirs.entity_logits, entities, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(their_states.last_hidden_state, ours.word_hidden, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(their_states.entity_last_hidden_state, ours.entity_hidden, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def trained_module():
    """A demo-sized module whose weights moved away from their initialisation."""
    data = KnowledgeDataModule(DEMO, num_workers=0)
    torch.manual_seed(0)
    module = KnowledgePretraining(vocab_size=data.vocab_size, entity_vocab_size=data.entity_vocab_size,
                                  pad_token_id=data.pad_token_id, objective_settings=ObjectiveSettings(queue_size=16),
                                  encoder={"use_entity_aware_attention": True})
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
    return module


@pytest.mark.parametrize("form", ["pytorch_model.bin", "model.safetensors"])
def test_export_reads_a_bare_state_dict_as_zero_to_fp32_writes_it(trained_module, tmp_path, form):
    """DeepSpeed's own converter writes tensors only; the model is rebuilt from the run's hparams.yaml."""
    from safetensors.torch import save_file

    run = tmp_path / "run"
    (run / "fp32").mkdir(parents=True)
    (run / "hparams.yaml").write_text(yaml.safe_dump({**dict(trained_module.hparams), "data_dir": DEMO}))
    state = {k: v.contiguous() for k, v in trained_module.state_dict().items()}
    if form.endswith(".bin"):
        torch.save(state, run / "fp32" / form)
    else:
        save_file(state, run / "fp32" / form)
    out = export(str(run / "fp32" / form), str(tmp_path / "hf"))
    assert {"config.json", "model.safetensors", "tokenizer.json", "entity_vocab.json"} <= {p.name for p in out.iterdir()}
    assert_export_matches(out, trained_module.model, demo_batch())


def test_a_bare_state_dict_without_hyperparameters_is_a_clear_error(trained_module, tmp_path):
    torch.save(trained_module.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match=r"holds weights only; pass --hparams_file <run>/hparams.yaml"):
        export(str(tmp_path / "pytorch_model.bin"), str(tmp_path / "hf"))


def test_a_checkpoint_from_before_the_typed_model_exports(tmp_path):
    """tests/fixtures/checkpoint-711c5c4 (old state-dict names, flat objective keys) exports, and
    transformers gives the numbers of the model it loads into."""
    old = Path(__file__).resolve().parent / "fixtures" / "checkpoint-711c5c4" / "last.ckpt"
    out = export(str(old), str(tmp_path / "hf"), data_dir=DEMO)
    model, _ = load_checkpoint_model(old)
    assert model.encoder.embeddings.word.weight.shape[1] == 16  # the fixture's own model, not a default one
    assert_export_matches(out, model, demo_batch())
