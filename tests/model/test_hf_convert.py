"""Our encoder and heads against transformers' LUKE and XLM-R, both directions, tiny random configs."""

import pytest
import torch
from transformers import AutoModel, LukeConfig, LukeForMaskedLM, LukeModel, XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaModel

from lightning_kg.model.config import EncoderConfig, ObjectiveSettings
from lightning_kg.model.hf_convert import export_hf, hf_entity_vocab, load_hf_weights
from lightning_kg.model.pretraining import KnowledgePretrainingModel

SIZES = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
             max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5)


def inputs():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 100, (2, 10), generator=generator)
    ids[1, 7:] = 1
    entities = torch.tensor([[5, 6, 2], [7, 0, 0]])
    positions = torch.tensor([[[1, 2], [4, -1], [6, 7]], [[3, -1], [-1, -1], [-1, -1]]])
    return dict(input_ids=ids, attention_mask=ids.ne(1).long(), entity_ids=entities,
                entity_position_ids=positions, entity_attention_mask=entities.ne(0).long())


def our_logits(model, batch):
    out = model.encoder(batch["input_ids"], batch["attention_mask"], batch["entity_ids"],
                        batch["entity_position_ids"], batch["entity_attention_mask"])
    words = model.mlm_head(out.word_hidden, model.encoder.embeddings.word.weight)
    entities = model.entity_head(out.entity_hidden) @ model.encoder.entity_embeddings.table.weight.t() + model.entity_head.bias
    return out, words, entities


def random_luke(aware):
    torch.manual_seed(1)
    hf = LukeForMaskedLM(LukeConfig(vocab_size=100, entity_vocab_size=50, entity_emb_size=32,
                                    use_entity_aware_attention=aware, **SIZES)).eval()
    # LUKE's checkpoints tie the LM decoder to the word embeddings; transformers' random init does not.
    with torch.no_grad():
        hf.lm_head.decoder.weight.copy_(hf.luke.embeddings.word_embeddings.weight)
    return hf


def our_model(aware, **weights):
    return KnowledgePretrainingModel(EncoderConfig.preset("tiny", 100, 50, use_entity_aware_attention=aware), ObjectiveSettings(**weights)).eval()


@pytest.mark.parametrize("aware", [False, True])
def test_import_luke_gives_the_same_states_and_logits(tmp_path, aware):
    hf = random_luke(aware)
    hf.save_pretrained(tmp_path)
    model = our_model(aware)
    report = load_hf_weights(model, str(tmp_path))
    assert not [k for k in report.missing if k.startswith(("encoder.", "mlm_head", "entity_head"))]
    assert set(report.unused) <= {"luke.pooler.dense.weight", "luke.pooler.dense.bias", "lm_head.decoder.weight", "lm_head.decoder.bias"}
    batch = inputs()
    with torch.no_grad():
        reference = hf(**batch, output_hidden_states=True)
        base = hf.luke(**batch)
        out, words, entities = our_logits(model, batch)
    torch.testing.assert_close(out.word_hidden, base.last_hidden_state, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.entity_hidden, base.entity_last_hidden_state, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(words, reference.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entities, reference.entity_logits, atol=1e-5, rtol=1e-5)


def test_import_xlm_roberta_gives_the_same_word_states_and_mlm_logits(tmp_path):
    torch.manual_seed(2)
    hf = XLMRobertaForMaskedLM(XLMRobertaConfig(vocab_size=100, **SIZES)).eval()
    hf.save_pretrained(tmp_path)
    model = our_model(False)
    report = load_hf_weights(model, str(tmp_path))
    assert "encoder.entity_embeddings.table.weight" in report.missing
    batch = inputs()
    with torch.no_grad():
        reference = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
        out = model.encoder(batch["input_ids"], batch["attention_mask"])
        words = model.mlm_head(out.word_hidden, model.encoder.embeddings.word.weight)
    torch.testing.assert_close(out.word_hidden, reference.hidden_states[-1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(words, reference.logits, atol=1e-5, rtol=1e-5)



@pytest.mark.parametrize("aware", [False, True])
def test_tensors_new_to_an_xlm_roberta_start_keep_their_init_and_entity_queries_copy_the_word_query(tmp_path, aware):
    """As LUKE's released code: entity tensors stay as initialised (N(0, 0.02), LayerNorm 1 and 0);
    with entity-aware attention, w2e/e2w/e2e queries start as copies of each layer's word query."""
    torch.manual_seed(2)
    XLMRobertaForMaskedLM(XLMRobertaConfig(vocab_size=100, **SIZES)).save_pretrained(tmp_path)
    model = our_model(aware)
    initial = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("encoder.entity_embeddings.")}
    report = load_hf_weights(model, str(tmp_path))
    for name, tensor in initial.items():
        torch.testing.assert_close(model.state_dict()[name], tensor, msg=name)
    torch.testing.assert_close(model.encoder.entity_embeddings.norm.weight, torch.ones(64))
    assert 0.015 < float(model.encoder.entity_embeddings.table.weight.detach().std()) < 0.025
    layer = model.encoder.layers[1]
    if aware:
        for query in (layer.w2e_query, layer.e2w_query, layer.e2e_query):
            torch.testing.assert_close(query.weight, layer.query.weight)
            torch.testing.assert_close(query.bias, layer.query.bias)
        assert "12 entity-aware query tensors (w2e/e2w/e2e) not in the checkpoint: copied" in str(report)
        assert not [k for k in report.missing if "_query" in k]


def test_import_bare_xlm_roberta_model_gives_the_same_word_states(tmp_path):
    """XLMRobertaModel saved on its own has no ``roberta.`` prefix; its tensors must load all the same."""
    torch.manual_seed(4)
    hf = XLMRobertaModel(XLMRobertaConfig(vocab_size=100, **SIZES)).eval()
    hf.save_pretrained(tmp_path)
    model = our_model(False)
    report = load_hf_weights(model, str(tmp_path))
    assert not [k for k in report.missing if k.startswith("encoder.") and not k.startswith("encoder.entity_embeddings.")]
    assert set(report.unused) == {"pooler.dense.weight", "pooler.dense.bias"}
    batch = inputs()
    with torch.no_grad():
        reference = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        ours = model.encoder(batch["input_ids"], batch["attention_mask"]).word_hidden
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("aware", [False, True])
def test_import_bare_luke_model_gives_the_same_word_and_entity_states(tmp_path, aware):
    torch.manual_seed(5)
    hf = LukeModel(LukeConfig(vocab_size=100, entity_vocab_size=50, entity_emb_size=32, use_entity_aware_attention=aware,
                              **SIZES)).eval()
    hf.save_pretrained(tmp_path)
    model = our_model(aware)
    report = load_hf_weights(model, str(tmp_path))
    assert not [k for k in report.missing if k.startswith("encoder.")]
    assert set(report.unused) == {"pooler.dense.weight", "pooler.dense.bias"}
    batch = inputs()
    with torch.no_grad():
        reference = hf(**batch)
        ours = model.encoder(batch["input_ids"], batch["attention_mask"], batch["entity_ids"], batch["entity_position_ids"],
                             batch["entity_attention_mask"])
    torch.testing.assert_close(ours.word_hidden, reference.last_hidden_state, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.entity_hidden, reference.entity_last_hidden_state, atol=1e-5, rtol=1e-5)


def test_a_checkpoint_with_no_encoder_tensor_is_an_error(tmp_path):
    from safetensors.torch import save_file

    (tmp_path / "config.json").write_text('{"hidden_size": 64}')
    save_file({"bert.embeddings.word_embeddings.weight": torch.zeros(100, 64)}, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=r"no encoder tensor matched \(first names in the checkpoint: \['bert\.embeddings"):
        load_hf_weights(our_model(False), str(tmp_path))


@pytest.mark.parametrize("aware", [False, True])
def test_export_loads_in_transformers_with_the_same_logits(tmp_path, aware):
    torch.manual_seed(3)
    model = our_model(aware)
    with torch.no_grad():  # move away from the init so equality is not trivial
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.01)
    vocab = [{"id": 0, "entity": "[PAD]", "titles": {}}, {"id": 3, "entity": "Q17", "titles": {"en": "Japan", "bg": "Япония"}}]
    export_hf(model, tmp_path, entity_vocab=vocab)
    hf, info = LukeForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    batch = inputs()
    with torch.no_grad():
        reference = hf.eval()(**batch)
        _, words, entities = our_logits(model, batch)
    torch.testing.assert_close(reference.logits, words, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(reference.entity_logits, entities, atol=1e-4, rtol=1e-4)
    base, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert type(base).__name__ == "LukeModel" and not info["missing_keys"]
    # The base model leaves out the pre-training heads, and only those.
    assert {k.split(".")[0] for k in info["unexpected_keys"]} <= {"lm_head", "entity_predictions"}


def test_export_writes_heads_of_objectives_that_were_off(tmp_path):
    model = our_model(False, mlm_weight=0.0, mep_vocab_weight=0.0)
    export_hf(model, tmp_path)
    _, info = LukeForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"]


def test_entity_vocab_keys_point_every_language_at_one_index():
    vocab = [{"id": 3, "entity": "Q17", "titles": {"en": "Japan", "bg": "Япония"}}]
    assert hf_entity_vocab(vocab) == {"Q17": 3, "en:Japan": 3, "bg:Япония": 3}


def test_missing_or_mismatched_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a local model directory"):
        load_hf_weights(our_model(False), str(tmp_path / "xlm-roberta-base"))
    LukeForMaskedLM(LukeConfig(vocab_size=100, entity_vocab_size=50, entity_emb_size=32, **(SIZES | {"hidden_size": 32}))).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="hidden_size: checkpoint 32, ours 64"):
        load_hf_weights(our_model(False), str(tmp_path))


def test_an_mluke_checkpoint_with_its_own_entity_vocabulary_maps_rows_by_name(tmp_path):
    """mLUKE ships an entity_vocab.json of its own ([MASK] first, "lang:Title" keys, [MASK2]); rows
    must land on our entities by name, whatever the two vocabularies' sizes and orders."""
    import json

    from lightning_kg.dataset.entity_vocab import EntityVocab

    hf = random_luke(False)  # 50 entity rows
    hf.save_pretrained(tmp_path)
    theirs = {"[MASK]": 0, "[PAD]": 1, "[UNK]": 2, "en:Japan": 10, "ja:日本": 10, "fr:Paris": 11, "en:Tokyo": 12,
              "[MASK2]": 49}
    (tmp_path / "entity_vocab.json").write_text(json.dumps(theirs, ensure_ascii=False), encoding="utf-8")
    ours = EntityVocab(entities=["[PAD]", "[UNK]", "[MASK]", "Q17", "Q90", "Q999", "Q1490"], counts=[0] * 7,
                       titles=[{}, {}, {}, {"ja": "日本"}, {"de": "Paris", "fr": "Paris"}, {"en": "Nowhere"},
                               {"bg": "Токио", "en": "Tokyo"}])
    model = KnowledgePretrainingModel(EncoderConfig.preset("tiny", 100, 7)).eval()
    unmatched = model.encoder.entity_embeddings.table.weight[5].detach().clone()
    with pytest.raises(ValueError, match="entity table of 50 rows, ours has 7, and the dataset's entity vocabulary was not given"):
        load_hf_weights(model, str(tmp_path))
    report = load_hf_weights(model, str(tmp_path), ours.names())
    assert "entity rows: 6 of our 7 matched by name through entity_vocab.json (3 special); the other 1 keep" in str(report)
    rows = [1, 2, 0, 10, 11, None, 12]  # their row for each of ours
    table, bias = model.encoder.entity_embeddings.table.weight, model.entity_head.bias
    for index, row in enumerate(rows):
        if row is not None:
            torch.testing.assert_close(table[index], hf.luke.entity_embeddings.entity_embeddings.weight[row])
            torch.testing.assert_close(bias[index], hf.entity_predictions.bias[row])
    torch.testing.assert_close(table[5], unmatched)
    # Same input, entities written in each vocabulary: the same states and, on matched entities, the same logits.
    batch = inputs()
    batch["entity_ids"] = torch.tensor([[3, 4, 2], [6, 0, 0]])
    their_batch = dict(batch, entity_ids=torch.tensor([[10, 11, 0], [12, 1, 1]]))
    with torch.no_grad():
        reference = hf(**their_batch)
        out, _, entities = our_logits(model, batch)
    torch.testing.assert_close(out.entity_hidden[0], hf.luke(**their_batch).entity_last_hidden_state[0], atol=1e-5, rtol=1e-5)
    matched = [i for i, row in enumerate(rows) if row is not None]
    torch.testing.assert_close(entities[0][:, matched], reference.entity_logits[0][:, [rows[i] for i in matched]],
                               atol=1e-5, rtol=1e-5)


def unigram_tokenizer(directory):
    """A tiny tokenizer in XLM-R's format (Unigram over "▁" pieces, XLM-R's special tokens first)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pieces = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁Tokyo", -2.0), ("▁is", -2.0),
              ("▁in", -2.0), ("▁Japan", -2.0), ("▁", -3.0), ("<mask>", 0.0)]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=3))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(prepend_scheme="always")
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
                            unk_token="<unk>", pad_token="<pad>", mask_token="<mask>").save_pretrained(directory)
    return directory


def test_an_export_with_xlm_rs_kind_of_tokenizer_loads_as_mluke_tokenizer_with_our_entities(tmp_path):
    from transformers import AutoTokenizer

    vocab = [{"id": 0, "entity": "[PAD]", "titles": {}}, {"id": 1, "entity": "[UNK]", "titles": {}},
             {"id": 2, "entity": "[MASK]", "titles": {}}, {"id": 3, "entity": "Q17", "titles": {"en": "Japan", "ja": "日本"}}]
    out = export_hf(our_model(False), tmp_path / "hf", tokenizer_dir=str(unigram_tokenizer(tmp_path / "tokenizer")),
                    entity_vocab=vocab)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert type(tokenizer).__name__ == "MLukeTokenizer"
    encoded = tokenizer("Tokyo is in Japan", entities=["ja:日本", "[MASK]"], entity_spans=[(12, 17), (0, 5)])
    assert encoded["input_ids"] == [0, 4, 5, 6, 7, 2] and encoded["entity_ids"] == [3, 2]
    assert encoded["entity_position_ids"][0][:2] == [4, -1]
