import json
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch

import lightning_kg.data.streams as streams_module
from lightning_kg.data.checks import SampleLimits, decode_sample
from lightning_kg.data.datamodule import KnowledgeDataModule, expand_urls
from lightning_kg.dataset.format import IGNORE_INDEX
from lightning_kg.dataset.knowledge import KnowledgeTable
from lightning_kg.recipes.synthetic_shards import MASK, PAD, fact_sample, make_dataset, npy, text_sample, write_shard
from tests.data.batch_compare import assert_same, batches


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("dm") / "dataset")


def test_batches_follow_the_format(dataset):
    dm = KnowledgeDataModule(str(dataset), num_workers=0, batch_size=6, fact_batch_size=5)
    table = KnowledgeTable.load(dataset)
    for batch in batches(dm, 3):
        B, S = batch["input_ids"].shape
        E, M = batch["entity_position_ids"].shape[1:]
        K, F = len(batch["mep_entities"]), len(batch["oe_objects"])
        assert B == 6 and S % 8 == 0 and 0 < F <= 5 and K > 0 and M <= 16 and E <= 32
        shapes = {"attention_mask": (B, S), "mlm_labels": (B, S), "entity_ids": (B, E), "entity_attention_mask": (B, E),
                  "entity_labels": (B, E), "mep_mention_positions": (K, 2), "mep_knowledge_ids": (K, 32),
                  "mep_knowledge_mask": (K, 32), "oe_object_ids": (F, 32), "oe_object_mask": (F, 32)}
        for key, shape in shapes.items():
            assert tuple(batch[key].shape) == shape, key
        assert all(t.dtype == torch.int64 for key, t in batch.items() if key != "counts")  # counts: host ints
        assert batch["oe_query_ids"].shape[0] == F and batch["oe_query_ids"].shape[1] % 8 == 0
        lengths = batch["attention_mask"].sum(1)
        for row in range(B):
            assert (batch["input_ids"][row, lengths[row]:] == PAD).all() and batch["attention_mask"][row, :lengths[row]].all()
            assert batch["input_ids"][row, 0] == 0 and batch["input_ids"][row, lengths[row] - 1] == 2
        assert (batch["mlm_labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()
        slots = batch["entity_attention_mask"] == 1
        assert (batch["entity_ids"][~slots] == 0).all() and (batch["entity_position_ids"][~slots] == -1).all()
        assert (batch["entity_labels"][~slots] == IGNORE_INDEX).all()
        assert ((batch["entity_ids"] == 2) == (batch["entity_labels"] != IGNORE_INDEX)).all()
        # Each contrastive pair points at a <mask> token of a masked mention and carries that entity's text.
        for (row, position), entity, ids, mask in zip(batch["mep_mention_positions"].tolist(), batch["mep_entities"].tolist(),
                                                      batch["mep_knowledge_ids"], batch["mep_knowledge_mask"]):
            assert batch["input_ids"][row, position] == MASK and batch["mlm_labels"][row, position] >= 4
            slot = batch["entity_position_ids"][row, :, 0].tolist().index(position)
            assert batch["entity_labels"][row, slot] == entity
            texts = [table.text(entity, lang)[:32].tolist() for lang in table.languages(entity)]
            assert ids[: int(mask.sum())].tolist() in texts and not mask[int(mask.sum()):].any()
        for obj, ids, mask in zip(batch["oe_objects"].tolist(), batch["oe_object_ids"], batch["oe_object_mask"]):
            texts = [table.text(obj, lang)[:32].tolist() for lang in table.languages(obj)]
            assert ids[: int(mask.sum())].tolist() in texts


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])  # 2: loader worker processes
def test_a_resumed_stream_continues_exactly(dataset, workers):
    options = dict(num_workers=workers, batch_size=3, fact_batch_size=2, shuffle_buffer=20)
    straight = batches(KnowledgeDataModule(str(dataset), **options), 6)
    first = KnowledgeDataModule(str(dataset), **options)
    head = batches(first, 3)
    state = first.state_dict() | {"consumed_batches": 3}  # what a trainer that used 3 batches reports
    assert state == {"consumed_batches": 3, "lanes": max(1, workers), "seed": 0, "dataset_hashes": {}, "language_sampling_alpha": 1.0}
    resumed = KnowledgeDataModule(str(dataset), **options)
    resumed.load_state_dict(state)
    assert_same(straight, head + batches(resumed, 3))
    # Another seed gives another stream, so the equality above means something.
    other = batches(KnowledgeDataModule(str(dataset), **options | {"seed": 1}), 1)[0]
    assert not torch.equal(other["mlm_labels"], straight[0]["mlm_labels"])


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])  # 2: loader worker processes
def test_alternating_batches_take_turns_and_resume_exactly(dataset, workers):
    options = dict(num_workers=workers, batch_size=3, fact_batch_size=2, shuffle_buffer=20, task_mixing="alternating")
    straight = batches(KnowledgeDataModule(str(dataset), **options), 6)
    assert [len(b["input_ids"]) for b in straight] == [3, 0, 3, 0, 3, 0]
    assert [len(b["oe_objects"]) for b in straight] == [0, 2, 0, 2, 0, 2]
    assert [len(b["mep_entities"]) > 0 for b in straight] == [True, False] * 3
    # The turns hold the samples mixed batches hold: the k-th text turn reads the k-th mixed batch's rows.
    mixed = batches(KnowledgeDataModule(str(dataset), **options | {"task_mixing": "mixed"}), 3)
    if workers == 0:
        assert [b["attention_mask"].sum() for b in straight[::2]] == [b["attention_mask"].sum() for b in mixed]
    # A facts-only batch keeps one padded entity slot, so the entity embeddings stay in the graph.
    assert straight[1]["entity_ids"].shape == (0, 8)
    resumed = KnowledgeDataModule(str(dataset), **options)
    resumed.load_state_dict({"consumed_batches": 3, "lanes": max(1, workers), "seed": 0, "dataset_hashes": {}})
    assert_same(straight[3:], batches(resumed, 3))
    with pytest.raises(ValueError, match="data.task_mixing is 'turns', expected 'mixed' or 'alternating'"):
        KnowledgeDataModule(str(dataset), task_mixing="turns")


def test_the_state_counts_batches_the_trainer_used_not_those_the_loader_prefetched(dataset):
    dm = KnowledgeDataModule(str(dataset), num_workers=0, batch_size=2, fact_batch_size=1)
    straight = batches(dm, 5)
    progress = SimpleNamespace(total=SimpleNamespace(processed=2))
    dm.trainer = SimpleNamespace(fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress)),
                                 global_rank=0, world_size=1)
    assert dm.state_dict()["consumed_batches"] == 2
    # A new iterator (a new epoch, or a resumed run) starts where the trainer stands.
    assert_same(straight[2:], batches(dm, 3))


class BatchRecorder(L.LightningModule):
    """Stands in for the model: records the first token ids of each batch it trains on."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def training_step(self, batch, batch_idx):
        self.seen.append(batch["mlm_labels"].clone())
        return self.weight.sum() * 0 + (self.weight - 1).pow(2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(dataset, tmp_path, max_steps, ckpt_path=None, **trainer_options):
    dm = KnowledgeDataModule(str(dataset), num_workers=0, batch_size=2, fact_batch_size=1)
    module = BatchRecorder()
    trainer = L.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0,
                        limit_val_batches=0, enable_checkpointing=False, **trainer_options)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return trainer, module


# Lightning warns on mid-epoch resumes with limit_train_batches; the equality below is the answer to it.
@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint")
def test_lightning_saves_the_stream_in_checkpoints_and_resumes_it(dataset, tmp_path):
    straight = batches(KnowledgeDataModule(str(dataset), num_workers=0, batch_size=2, fact_batch_size=1), 7)
    trainer, module = fit(dataset, tmp_path, 4, limit_train_batches=3)  # epochs of 3 batches continue the stream
    ckpt = tmp_path / "mid.ckpt"
    trainer.save_checkpoint(ckpt)
    assert torch.load(ckpt, weights_only=False)["KnowledgeDataModule"]["consumed_batches"] == 4
    _, resumed = fit(dataset, tmp_path, 7, ckpt_path=str(ckpt), limit_train_batches=3)
    seen = module.seen + resumed.seen
    assert len(seen) == 7 and all(torch.equal(a, b["mlm_labels"]) for a, b in zip(seen, straight))


def sample_keys(monkeypatch, run):
    keys = []
    real = streams_module.decode_sample

    def recording(raw, kind, limits):
        if kind == "text":
            keys.append((raw["__url__"], raw["__key__"]))
        return real(raw, kind, limits)

    monkeypatch.setattr(streams_module, "decode_sample", recording)
    run()
    monkeypatch.undo()
    return keys


def rank_batches(monkeypatch, rank, world, **options):
    """The validation batches of ``rank`` in a ``world``-rank run, and the sample keys they decoded."""
    batches_seen = []

    def run():
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world))
        batches_seen.extend(KnowledgeDataModule(**{"num_workers": 0, "batch_size": 5} | options).val_dataloader())
    keys = sample_keys(monkeypatch, run)
    return batches_seen, keys


# 3 val shards of 24 samples: 2 ranks split them by shard (48 + 24 samples), 4 by sample (18 each).
@pytest.mark.parametrize(("world_size", "batches"), [(2, 5), (4, 4)])
def test_ranks_see_disjoint_validation_samples_and_run_the_same_number_of_batches(dataset, monkeypatch, world_size, batches):
    _, alone = rank_batches(monkeypatch, 0, 1, data_dir=str(dataset))
    ranks = [rank_batches(monkeypatch, rank, world_size, data_dir=str(dataset)) for rank in range(world_size)]
    counts = [len(batches) for batches, _ in ranks]
    # Unequal counts hang DDP/ZeRO-3 in their collectives: every rank takes the fewest, ceil(24 / 5) or ceil(18 / 5).
    assert counts == [batches] * world_size
    keys = [key for _, rank_keys in ranks for key in rank_keys]
    assert len(alone) == 72 and len(set(keys)) == len(keys) and set(keys) <= set(alone)
    if world_size == 4:  # even slices: nothing is left out
        assert sorted(keys) == sorted(alone)


def test_val_shards_without_counts_need_val_batches_on_several_ranks(dataset, monkeypatch):
    # pipe: URLs carry no count: rank 0 holds 2 shards (10 batches), rank 1 one (5): with val_batches 7,
    # both give 7, rank 1 reading its shard again.
    urls = f"pipe:cat {dataset}/val-00000{{0..2}}.tar"
    counts = [len(rank_batches(monkeypatch, rank, 2, data_dir=str(dataset), val_shards=urls, val_batches=7)[0]) for rank in (0, 1)]
    assert counts == [7, 7]
    with pytest.raises(ValueError, match="has no sample count in manifest.json, so the ranks cannot agree on a number of "
                                         "batches; set --data.val_batches N"):
        rank_batches(monkeypatch, 0, 2, data_dir=str(dataset), val_shards=urls)


@pytest.mark.slow  # two loader worker processes
def test_validation_is_the_same_each_time_and_capped_by_val_batches(dataset):
    dm = KnowledgeDataModule(str(dataset), num_workers=2, batch_size=5, fact_batch_size=4)
    first, second = list(dm.val_dataloader()), list(dm.val_dataloader())
    assert len(first) == 15 and all(len(b["oe_objects"]) > 0 for b in first)
    assert_same(first, second)
    capped = list(KnowledgeDataModule(str(dataset), num_workers=0, batch_size=5, fact_batch_size=4, val_batches=4).val_dataloader())
    assert_same(first[:4], capped)


LIMITS = SampleLimits(vocab_size=65, entity_vocab_size=40, bos_token_id=0, eos_token_id=2, max_seq_length=64)


def test_bad_samples_name_the_shard_the_key_and_the_expectation():
    good = {"__url__": "pipe:aws s3 cp s3://b/train-000007.tar -", "__key__": "abc-0001",
            "json": b'{"lang": "en", "mentions": [[1, 3, 9], [3, 4, 1]]}', "input_ids.npy": npy(np.array([0, 5, 6, 7, 2], np.int32))}
    assert decode_sample(good, "text", LIMITS)["mentions"].tolist() == [[1, 3, 9], [3, 4, 1]]
    where = r"^pipe:aws s3 cp s3://b/train-000007.tar -: sample abc-0001: "
    cases = [
        ({"json": None}, where + "no 'json' member"),
        ({"input_ids.npy": None}, where + "no 'input_ids.npy' member"),
        ({"json": b"{"}, "json member is not JSON"),
        ({"json": b'{"lang": "en"}'}, r"json \"mentions\" must be a list of \[token_start"),
        ({"input_ids.npy": npy(np.array([0, 5, 2], np.int64))}, r"input_ids is int64 \(3,\), expected int32 \(S,\) with 2 <= S <= 64"),
        ({"input_ids.npy": npy(np.zeros(65, np.int32))}, r"expected int32 \(S,\) with 2 <= S <= 64"),
        ({"input_ids.npy": npy(np.array([5, 6, 2], np.int32))}, r"must start with <s> \(0\) and end with </s> \(2\)"),
        ({"input_ids.npy": b"junk"}, "input_ids.npy is not a .npy array"),
        ({"json": b'{"mentions": [[1, 3, 40]]}'}, r"entity index 40 in mentions, expected \[UNK\] \(1\) or 3..39"),
        ({"json": b'{"mentions": [[1, 3, 2]]}'}, r"entity index 2 in mentions"),
        ({"json": b'{"mentions": [[1, 9, 5]]}'}, r"a mention span lies outside the tokens 1..4"),
        ({"input_ids.npy": npy(np.array([0, 500, 2], np.int32))}, r"token id 500 outside the tokenizer's 65 ids"),
    ]
    for change, message in cases:
        raw = {k: v for k, v in (good | change).items() if v is not None}
        with pytest.raises(ValueError, match=message):
            decode_sample(raw, "text", LIMITS)
    fact = {"__url__": "facts-train-000000.tar", "__key__": "3-P36-5-en", "json": b'{"query_ids": [0, 4, 2], "subject": 3, "object": 5}'}
    assert decode_sample(fact, "fact", LIMITS)["object"] == 5
    for body, message in [(b'{"query_ids": [0, 4, 2], "subject": 3, "object": 40}', r"json \"object\" is 40, expected an entity index in 3..39"),
                          (b'{"query_ids": [], "subject": 3, "object": 5}', r"json \"query_ids\" must be a non-empty list of token ids below 65")]:
        with pytest.raises(ValueError, match="facts-train-000000.tar: sample 3-P36-5-en: " + message):
            decode_sample(fact | {"json": body}, "fact", LIMITS)


def test_a_bad_sample_in_a_shard_stops_the_loader_with_its_name(dataset, tmp_path):
    rng = np.random.default_rng(0)
    samples = [text_sample(f"{i:016x}-0000", rng, 40) for i in range(3)]
    samples[1]["json"] = json.dumps({"lang": "en", "mentions": [[1, 2, 77]]}).encode()
    write_shard(tmp_path / "bad-000000.tar", samples)
    write_shard(tmp_path / "facts-000000.tar", [fact_sample(rng, 40)])
    dm = KnowledgeDataModule(str(dataset), num_workers=0, batch_size=3, shuffle_buffer=0, bad_samples="fail",
                             train_shards=str(tmp_path / "bad-000000.tar"), train_fact_shards=str(tmp_path / "facts-000000.tar"))
    with pytest.raises(ValueError, match=rf"{tmp_path}/bad-000000.tar: sample 0000000000000001-0000: entity index 77"):
        batches(dm, 1)


def test_url_specs_expand_braces_globs_and_pipes(dataset):
    names = [f"train-{i:06d}.tar" for i in range(4)]
    assert expand_urls("train-{000000..000003}.tar", dataset) == [str(dataset / n) for n in names]
    assert expand_urls("train-*.tar", dataset) == [str(dataset / n) for n in names]
    assert expand_urls([str(dataset / names[0])], dataset) == [str(dataset / names[0])]
    assert expand_urls("pipe:aws s3 cp s3://b/train-{000000..000001}.tar -", dataset) == [
        "pipe:aws s3 cp s3://b/train-000000.tar -", "pipe:aws s3 cp s3://b/train-000001.tar -"]
    with pytest.raises(FileNotFoundError, match="train-999999.tar"):
        expand_urls("train-999999.tar", dataset)


def test_pipe_urls_stream_through_a_command(dataset):
    dm = KnowledgeDataModule(str(dataset), num_workers=0, batch_size=2, train_shards=f"pipe:cat {dataset}/train-00000{{0..1}}.tar")
    assert batches(dm, 1)[0]["input_ids"].shape[0] == 2


def test_properties_and_clear_errors(dataset, tmp_path):
    dm = KnowledgeDataModule(str(dataset))
    assert (dm.vocab_size, dm.entity_vocab_size, dm.pad_token_id, dm.mask_token_id) == (65, 40, PAD, MASK)
    assert dm.manifest["shards"]["train"][0]["name"] == "train-000000.tar" and dm.tokenizer.cls_token_id == 0
    dm.load_state_dict({"consumed_batches": 4, "lanes": 1, "seed": 0})
    with pytest.raises(ValueError, match="--data.num_workers 0"):
        dm.train_dataloader()
    with pytest.raises(ValueError, match="--data.seed 3"):
        dm.load_state_dict({"consumed_batches": 4, "lanes": 2, "seed": 3})
    with pytest.raises(FileNotFoundError, match="manifest.json not found. Prepare a dataset"):
        KnowledgeDataModule(str(tmp_path / "none"))
    with pytest.raises(ValueError, match="knowledge_language is 'de'"):
        KnowledgeDataModule(str(dataset), knowledge_language="de")


def test_the_demo_data_dir_is_found_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no shards/ here: the repository's, beside the package
    dm = KnowledgeDataModule("shards/demo", num_workers=0)
    demo = Path(__file__).resolve().parents[2] / "shards" / "demo"
    assert dm.data_dir == demo and dm.hparams.data_dir == str(demo)  # as found, for export and probe later
    (tmp_path / "shards" / "demo").mkdir(parents=True)  # one of its own in the working directory wins
    with pytest.raises(FileNotFoundError, match=r"data.data_dir: shards/demo/manifest.json not found"):
        KnowledgeDataModule("shards/demo")
