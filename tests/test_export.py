"""``export`` from DeepSpeed's ``zero_to_fp32`` output (tests/train has the ``.ckpt`` and the DeepSpeed
directory), checked against transformers with tests/export_check.py."""

import pytest
import torch
import yaml

from lightning_kg.data.datamodule import KnowledgeDataModule
from lightning_kg.export.main import export
from lightning_kg.model.config import ObjectiveSettings
from lightning_kg.runs.checkpoints import load_checkpoint_model
from lightning_kg.train.module import KnowledgePretraining
from tests.demo import DEMO, ROOT
from tests.export_check import assert_export_matches


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
def test_export_reads_a_bare_state_dict_as_zero_to_fp32_writes_it(trained_module, tmp_path, form, demo_batch):
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
    assert_export_matches(out, trained_module.model, demo_batch)


def test_a_bare_state_dict_without_hyperparameters_is_a_clear_error(trained_module, tmp_path):
    torch.save(trained_module.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match=r"holds weights only; pass --hparams_file <run>/hparams.yaml"):
        export(str(tmp_path / "pytorch_model.bin"), str(tmp_path / "hf"))


def test_a_checkpoint_from_before_the_typed_model_exports(tmp_path, demo_batch):
    """tests/fixtures/checkpoint-711c5c4 (old state-dict names, flat objective keys) exports, and
    transformers gives the numbers of the model it loads into."""
    old = ROOT / "tests" / "fixtures" / "checkpoint-711c5c4" / "last.ckpt"
    out = export(str(old), str(tmp_path / "hf"), data_dir=DEMO)
    model, _ = load_checkpoint_model(old)
    assert model.encoder.embeddings.word.weight.shape[1] == 16  # the fixture's own model, not a default one
    assert_export_matches(out, model, demo_batch)
