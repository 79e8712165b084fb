"""Open-vocabulary labels: class names as queries through a text encoder (src_files/models/text_encoder.py), a
zero-shot head of any query width, new classes at inference (infer.py --classes), zero-shot training on any layout
(train.py --zsl 1 --text-encoder) and query augmentation. Each encoding is checked against an independent
computation: numpy means of the file's vectors, the matrix rows, open_clip's own encode_text."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import infer
import train
import train_zsl_nus
import validate
from src_files.data import demo_nus_root
from src_files.data.demo import demo_word_vectors, write_word_vector_file
from src_files.errors import UserError
from src_files.ml_decoder.ml_decoder import MLDecoder, update_wordvecs
from src_files.models.factory import head_shape
from src_files.models.text_encoder import PROMPTS, encode_names, from_record, parse_text_encoder
from tests.script_calls import assert_user_error, call_main
from tests.test_scripts import SMALL


def _vec_file(path, words, header=True):
    rng = np.random.default_rng(0)
    vectors = {w: rng.normal(size=5).astype(np.float32) for w in words}
    with open(path, 'w') as f:
        f.write(f"{len(words)} 5\n" if header else '')  # (fastText's header line)
        f.writelines(f"{w} {' '.join(repr(float(v)) for v in vec)}\n" for w, vec in vectors.items())
    return vectors


def test_a_word_vector_file_encodes_a_name_as_the_mean_of_its_words(tmp_path):
    vectors = _vec_file(tmp_path / 'w.vec', ['red', 'circle', 'traffic', 'light', 'Blue'])
    encoder = parse_text_encoder(str(tmp_path / 'w.vec'))
    got = encode_names(['red circle', 'Traffic_Light', 'Blue'], encoder)
    expected = np.stack([(vectors['red'] + vectors['circle']) / 2, (vectors['traffic'] + vectors['light']) / 2,
                         vectors['Blue']])
    assert got.shape == (3, 5) and np.allclose(got.numpy(), expected, atol=1e-6)
    with pytest.raises(UserError, match=r"2 words are not in .*w.vec: 'purple' \(in 'purple star'\), 'star' \(in "
                                        r"'purple star'\); rename the classes"):
        encode_names(['red circle', 'purple star'], encoder)
    record = encoder.record(5)
    assert record['kind'] == 'vectors' and record['file'] == 'w.vec' and len(record['sha256']) == 64
    assert torch.equal(encode_names(['red circle'], from_record(record)), got[:1])
    with open(tmp_path / 'w.vec', 'a') as f:
        f.write('star 1 2 3 4 5\n')  # (the file changes after training: refused, named)
    with pytest.raises(UserError, match='has changed since the model was trained with it'):
        from_record(record)


def test_a_matrix_file_gives_the_rows_of_the_names_it_lists(tmp_path):
    names = ['cat', 'dog', 'person']
    matrix = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    (tmp_path / 'names.txt').write_text('\n'.join(names) + '\n')
    np.save(tmp_path / 'm.npy', matrix)
    torch.save(torch.from_numpy(matrix).t().contiguous(), tmp_path / 'm.pth')  # ([d, n], as wordvec_array.pth)
    for file in ('m.npy', 'm.pth'):
        encoder = parse_text_encoder(str(tmp_path / file), str(tmp_path / 'names.txt'))
        assert np.array_equal(encode_names(['person', 'cat'], encoder).numpy(), matrix[[2, 0]])
    with pytest.raises(UserError, match="1 classes are not in .*names.txt: zebra; a matrix scores only its own"):
        encode_names(['zebra'], encoder)
    with pytest.raises(UserError, match='name its classes .* with --text-names FILE'):
        parse_text_encoder(str(tmp_path / 'm.npy'))
    with pytest.raises(UserError, match='text encoder file not found'):
        parse_text_encoder(str(tmp_path / 'nowhere.vec'))


def tiny_open_clip(folder):
    """A randomly initialised open_clip CLIP with a tiny text tower, saved as an open_clip model folder (config +
    weights, as a Hugging Face snapshot holds them); -> the model."""
    from open_clip.model import CLIP
    config = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 1}}
    torch.manual_seed(0)
    model = CLIP(**config).eval()
    os.makedirs(folder, exist_ok=True)
    Path(folder, 'open_clip_config.json').write_text(json.dumps({"model_cfg": config, "preprocess_cfg": {}}))
    torch.save(model.state_dict(), Path(folder, 'open_clip_pytorch_model.bin'))
    return model


def test_open_clip_names_are_the_prompt_ensemble_of_encode_text(tmp_path):
    import open_clip
    cache = tmp_path / 'models--tiny--clip'  # (a Hugging Face cache folder: the one snapshot holds the files)
    model = tiny_open_clip(cache / 'snapshots' / 'abc123')
    (tmp_path / 'prompts.txt').write_text('a photo of a {}.\nitap of a {}.\n')
    tokenizer = open_clip.get_tokenizer('ViT-B-32')  # (the CLIP tokenizer: its vocabulary ships with the package)
    names = ['red circle', 'blue star', 'traffic light']
    for prompts, templates in ((None, PROMPTS), (str(tmp_path / 'prompts.txt'), ('a photo of a {}.', 'itap of a {}.'))):
        encoder = parse_text_encoder(f'open_clip:{cache}', prompts_file=prompts)
        got = encode_names(names, encoder)
        with torch.no_grad():
            expected = torch.stack([
                torch.nn.functional.normalize(torch.nn.functional.normalize(
                    model.encode_text(tokenizer([t.format(n) for t in templates])), dim=-1).mean(0), dim=-1)
                for n in names])
        assert got.shape == (3, 16) and torch.allclose(got, expected, atol=1e-6)
        assert encoder.templates == templates
    with pytest.raises(UserError, match='needs its architecture, open_clip:ARCH:'):
        parse_text_encoder(f"open_clip:{cache / 'snapshots' / 'abc123' / 'open_clip_pytorch_model.bin'}")
    with pytest.raises(UserError, match='open_clip model not found'):
        parse_text_encoder(f"open_clip:{tmp_path / 'nowhere'}")


def test_the_zero_shot_head_takes_any_query_width():
    head = MLDecoder(num_classes=5, num_of_groups=5, decoder_embedding=64, initial_num_features=32, zsl=1,
                     query_dim=512)
    for p in head.parameters():
        torch.nn.init.normal_(p, std=0.05)
    update_wordvecs(head, test_wordvecs=torch.randn(512, 7))
    assert head(torch.randn(2, 32, 4, 4)).shape == (2, 7)
    with pytest.raises(ValueError, match=r'word vectors must be \[512, n\], got \[300, 7\]'):
        update_wordvecs(head, test_wordvecs=torch.randn(300, 7))
    state = {f'head.{k}': v for k, v in head.state_dict().items()}
    assert head_shape(state)['query_dim'] == 512 and head_shape(state)['decoder_embedding'] == 64
    published = MLDecoder(num_classes=5, decoder_embedding=768, zsl=1)  # (the published 300-d default)
    assert published.wordvec_proj.in_features == 300


def test_query_drop_is_the_loss_over_the_kept_classes_and_noise_only_in_training():
    from src_files.training.zero_shot import QueryDrop, add_query_noise
    seen = []

    def criterion(logits, targets):
        seen.append(logits.shape[1])
        return (logits * targets).sum()
    logits, targets = torch.randn(4, 10), torch.ones(4, 10)
    torch.manual_seed(0)
    dropped = QueryDrop(criterion, 0.5)(logits, targets)
    torch.manual_seed(0)
    keep = torch.rand(10) >= 0.5
    assert seen[0] == int(keep.sum()) < 10 and torch.allclose(dropped, logits[:, keep].sum())
    head = MLDecoder(num_classes=3, num_of_groups=3, decoder_embedding=64, initial_num_features=8, zsl=1)
    for p in head.parameters():
        torch.nn.init.normal_(p, std=0.05)
    update_wordvecs(head, train_wordvecs=torch.randn(300, 3))
    clean = head.decoder.query_embed.clone()
    x = torch.randn(2, 8, 3, 3)
    head.eval()
    before = head(x)
    add_query_noise(head, 0.5)
    assert torch.equal(head(x), before)  # (evaluation: no noise)
    head.train()
    torch.manual_seed(1)
    noisy = head(x)
    assert torch.equal(head.decoder.query_embed, clean)  # (put back after each forward)
    head.eval()
    assert not torch.allclose(noisy, before) and torch.equal(head(x), before)


@pytest.fixture(scope='module')
def nus(tmp_path_factory):
    return demo_nus_root(cache_dir=str(tmp_path_factory.mktemp('nus')), num_train=24, num_val=16)


@pytest.mark.slow
def test_zero_shot_training_with_an_open_clip_encoder_and_new_classes_at_inference(nus, tmp_path, capfd,
                                                                                   monkeypatch):
    from small_models import shallow_tresnet_m
    shallow_tresnet_m(monkeypatch)
    tiny_open_clip(tmp_path / 'clip')
    out = tmp_path / 'run'
    code, out_text, err = call_main(train_zsl_nus, ['--data', nus, '--epochs', 1, '--output-dir', out,
                                                    '--text-encoder', f"open_clip:{tmp_path / 'clip'}"] + SMALL, capfd)
    assert code == 0, err
    saved = torch.load(out / 'best.pth', weights_only=True)
    record = saved['text_encoder']
    assert record['kind'] == 'open_clip' and record['dim'] == 16 and record['templates'] == list(PROMPTS)
    assert saved['meta']['query_dim'] == 16 and saved['wordvecs'].shape == (16, 16)  # (16-d, 12 seen + 4 unseen)
    # infer.py rebuilds the queries of names never seen, through the recorded encoder: its scores equal a forward
    # with the names encoded here
    classes = ['purple hexagon', 'red circle']
    pics = sorted((Path(nus) / 'images').glob('val_*.jpg'))[:2]
    code, _, err = call_main(infer, ['--model-path', out / 'best.pth', '--pic-path', pics[0].parent, '--workers', 0,
                                     '--thr', 0, '--top-k', 10, '--classes', ','.join(classes), '--output',
                                     tmp_path / 'labels.json'], capfd)
    assert code == 0, err
    rows = {row['image']: dict(zip(row['labels'], row['scores']))
            for row in json.loads((tmp_path / 'labels.json').read_text())}
    from src_files.helper_functions.augmentations import val_transform
    from src_files.data.files import load_rgb
    from src_files.inference.load import load_model
    from src_files.models.config import ModelConfig
    from src_files.settings import InferenceSettings
    loaded = load_model(InferenceSettings(model=ModelConfig(), model_path=str(out / 'best.pth')), torch.device('cpu'))
    update_wordvecs(loaded.model, test_wordvecs=encode_names(classes, parse_text_encoder(
        f"open_clip:{tmp_path / 'clip'}")).t())
    for pic in pics:
        with torch.no_grad():
            probs = torch.sigmoid(loaded.model(val_transform(64)(load_rgb(str(pic)))[None]))[0]
        row = next(v for k, v in rows.items() if k.endswith(pic.name))
        assert all(abs(row[c] - float(p)) < 1e-5 for c, p in zip(classes, probs))
    code, _, err = call_main(infer, ['--model-path', out / 'best.pth', '--pic-path', pics[0], '--classes', 'a',
                                     '--text-encoder', str(tmp_path / 'nowhere.vec')], capfd)
    assert_user_error(code, err, 'text encoder file not found')


@pytest.mark.slow
def test_train_py_zero_shot_on_a_csv_layout_and_validate_scores_its_class_names(tmp_path, capfd, monkeypatch):
    from small_models import shallow_tresnet_m
    from src_files.data import demo_coco_root
    from src_files.data.layouts import export_layout
    shallow_tresnet_m(monkeypatch)
    data = tmp_path / 'csv'
    export_layout(demo_coco_root(cache_dir=str(tmp_path / 'demo'), num_train=40, num_val=16), str(data), 'csv')
    words = write_word_vector_file(str(tmp_path / 'words.vec'), demo_word_vectors())
    out = tmp_path / 'run'
    code, text, err = call_main(train, ['--data', data, '--epochs', 1, '--output-dir', out, '--zsl', 1,
                                        '--text-encoder', words, '--query-noise', 0.1, '--query-drop', 0.2] + SMALL,
                                capfd)
    assert code == 0, err
    assert 'zero-shot queries: 16 class names through vectors words.vec (300-d)' in text
    code, text, err = call_main(validate, ['--model-path', out / 'best.pth', '--data', data, '--workers', 0], capfd)
    assert code == 0, err
    assert text.count('mAP ') == 1 and 'image views' not in text
    code, _, err = call_main(train, ['--data', data, '--epochs', 1, '--output-dir', tmp_path / 'x', '--zsl', 1]
                             + SMALL, capfd)
    assert_user_error(code, err, 'train.py --zsl 1 builds its queries from the class names: give --text-encoder')


def test_the_demo_words_and_their_matrix_give_the_same_queries(tmp_path):
    """benchmarks/zsl_queries.py trains on both: the same queries, so the same run (BENCHMARKS.md)."""
    from benchmarks.zsl_queries import encoder_files
    from src_files.data.demo import CLASS_NAMES
    words, matrix, names = encoder_files(str(tmp_path))
    by_words = encode_names(CLASS_NAMES, parse_text_encoder(words))
    assert torch.equal(by_words, encode_names(CLASS_NAMES, parse_text_encoder(matrix, names)))
    vectors = demo_word_vectors()
    colour, shape = CLASS_NAMES[5].split()
    assert np.allclose(by_words[5].numpy(), (vectors[colour] + vectors[shape]) / 2, atol=1e-6)
