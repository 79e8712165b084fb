"""Zero-shot evaluation on NUS-WIDE (Fast0Tag protocol, docs/PUBLISHED_MATH.md): ZSL and GZSL mAP, F1@3, F1@5."""
from src_files.evaluation.predict import predict
from src_files.helper_functions.metrics import f1_at_k, mAP
from src_files.ml_decoder.ml_decoder import update_wordvecs


def zsl_scores(scores, targets):
    """{'mAP', 'P@3', 'R@3', 'F1@3', 'P@5', 'R@5', 'F1@5'} in percent."""
    out = {'mAP': mAP(targets, scores)}
    for k in (3, 5):
        r = f1_at_k(targets, scores, k)
        out[f'P@{k}'], out[f'R@{k}'], out[f'F1@{k}'] = r['precision'], r['recall'], r['f1']
    return out


def evaluate_zsl(module, nus, info, batch_size, workers, amp_dtype=None, input_dtype=None, channels_last=False,
                 gzsl=True, restore_train=True, check_scores=None, loaders=None):
    """ZSL metrics (unseen classes, val images with an unseen label) and, when `gzsl`, GZSL metrics (seen +
    unseen classes, val images with any label): {'zsl': {...}, 'gzsl': {...}}.

    The head's queries are switched to the word vectors of the classes being scored and, when
    `restore_train`, back to the training classes afterwards. `check_scores(scores)` may refuse a view's scores.
    `loaders`: {'zsl': ..., 'gzsl': ...}, evaluation.eval_loader's of the two sets, kept between calls.
    """
    results = {}
    views = [('zsl', nus.zsl_val_set, nus.test_wordvecs)]
    if gzsl:
        views.append(('gzsl', nus.gzsl_val_set, nus.gzsl_wordvecs))
    try:
        for name, dataset, wordvecs in views:
            update_wordvecs(module, test_wordvecs=wordvecs)
            scores, targets = predict(module, dataset, info, batch_size, workers, amp_dtype=amp_dtype,
                                      input_dtype=input_dtype, channels_last=channels_last, desc=name.upper(),
                                      loader=(loaders or {}).get(name))
            if check_scores is not None:
                check_scores(scores)
            results[name] = zsl_scores(scores, targets)
    finally:
        if restore_train:
            update_wordvecs(module, train_wordvecs=nus.train_wordvecs)
    return results


def format_zsl(results):
    parts = []
    for name in ('zsl', 'gzsl'):
        if name in results:
            r = results[name]
            parts.append(f"{name.upper()} mAP {r['mAP']:.2f} F1@3 {r['F1@3']:.2f} F1@5 {r['F1@5']:.2f}")
    return ' | '.join(parts)
