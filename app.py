"""A labelling page: try a checkpoint in the browser and see why it says what it says.

    python app.py --demo                                  # the demo checkpoint (trained first if missing)
    python app.py --model-path outputs/coco/best.pth --thresholds report/thresholds.json
    python app.py --model-path best.onnx --port 7861     # an exported file (no attention maps)

Serves a Gradio page on 127.0.0.1 (--port, default 7860): drop one or several images (or take a webcam shot, or
paste one), read the labels above the threshold with their probabilities as bars, best first, and the head's
attention map behind each label; a threshold slider, and a "use tuned thresholds" box with --thresholds; for a
zero-shot checkpoint a box of class names scored on the spot; the model's card. The checkpoint is loaded once and
run as infer.py runs it (by default the exact fp32 model), so the page's probabilities are infer.py's. Uploads stay
in a temporary folder removed at exit and may not exceed --max-file-size.

The same functions are Gradio API endpoints, so a script labels images without a browser:

    from gradio_client import Client, handle_file
    client = Client('http://127.0.0.1:7860/')
    labels, maps, table, scores, message = client.predict([handle_file('photo.jpg')], None, 0.75, False,
                                                          api_name='/label')

and from Python without a server: src_files/inference/page.py's Labeller.
"""
import atexit
import os
import shutil
import tempfile

import train
from src_files import distributed
from src_files.cli import flags, resolve, run
from src_files.data import demo_coco_root
from src_files.errors import UserError
from src_files.export.zsl_inputs import read_classes
from src_files.inference.load import precision_line
from src_files.inference.page import Labeller
from src_files.inference.predictions import load_thresholds

DEMO_EXAMPLES = 4  # demo images offered as examples
MAX_SHOWN = 12  # images labelled per click (the others are counted)


def build_parser():
    return flags.app_parser(__doc__.split('\n')[0])


def demo_checkpoint(settings):
    """--demo: the demo run's best.pth, trained first (train.py --demo, a few minutes on a CPU) if missing."""
    if os.path.isfile(settings.model_path):
        return
    print(f"note: {settings.model_path} is missing: training the demo model first (train.py --demo, a few minutes "
          f"on a CPU)", flush=True)
    if train.main(['--demo']) != 0:
        raise UserError("the demo model could not be trained; run python train.py --demo to see why")


def _files(files):
    return [f if isinstance(f, str) else getattr(f, 'name', str(f)) for f in (files or [])]


class Page:
    """The page's callbacks around a Labeller (each one an API endpoint)."""

    def __init__(self, labeller):
        self.labeller = labeller

    def label(self, files, camera, thr, tuned):
        """(labels of the first image for the bars, attention maps, a row per image, every score, a message)."""
        images = _files(files)[:MAX_SHOWN] + ([camera] if camera is not None else [])
        if not images:
            return {}, [], [], {}, "Drop an image (or several), take a webcam shot or paste one."
        first, maps, rows, scores, problems = None, [], [], {}, []
        for image in images:
            name = os.path.basename(image) if isinstance(image, str) else 'webcam / pasted image'
            try:
                result = self.labeller.label(image, thr, tuned, maps=self.labeller.head is not None)
                maps += [(picture, f"{name}: {caption}" if len(images) > 1 else caption)
                         for picture, caption in result.get('maps', [])]
            except UserError as error:
                problems.append(str(error).replace(os.path.dirname(str(image)) + os.sep, ''))
                continue
            first = first or result
            scores[name] = result['scores']
            found = ', '.join(f"{n} ({p:.2f})" for n, p in result['labels'])
            rows.append([name, found or '(none above the threshold)'])
        bars = {n: p for n, p in first['labels']} if first else {}
        extra = len(_files(files)) - MAX_SHOWN
        message = ' '.join(problems + ([f"{extra} more images not labelled (at most {MAX_SHOWN} per click)."]
                                       if extra > 0 else []))
        return bars, maps, rows, scores, message or 'Labelled.'

    def set_classes(self, text):
        """Zero-shot checkpoints: score the comma-separated names from now on -> (card, message)."""
        try:
            names = self.labeller.set_classes(read_classes(text, None) if text and text.strip() else None)
        except UserError as error:
            return self.card(), str(error)
        return self.card(), f"Scoring {len(names)} classes: {', '.join(names[:20])}"

    def card(self):
        return '| | |\n|---|---|\n' + '\n'.join(f"| {k} | {v} |" for k, v in self.labeller.card())


def build_page(labeller, examples=()):
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')  # (nothing leaves the machine)
    import gradio as gr  # (only the page needs it)
    page = Page(labeller)
    with gr.Blocks(title='ML-Decoder labelling page') as blocks:
        gr.Markdown("## ML-Decoder: labels and where the head looked")
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(file_count='multiple', file_types=['image'], label='images (one or several)')
                camera = gr.Image(sources=['webcam', 'clipboard'], type='pil', label='or a webcam shot / paste')
                thr = gr.Slider(0.0, 1.0, value=labeller.thr, step=0.01, label='threshold')
                tuned = gr.Checkbox(value=labeller.tuned is not None, visible=labeller.tuned is not None,
                                    label='use tuned thresholds (--thresholds)')
                classes = gr.Textbox(label='class names to score (comma-separated)', visible=labeller.zero_shot,
                                     placeholder='red car, fire truck, person')
                set_classes = gr.Button('score these classes', visible=labeller.zero_shot)
                button = gr.Button('label', variant='primary')
                if examples:
                    gr.Examples([[[path]] for path in examples], inputs=[files], label='demo images')
            with gr.Column(scale=2):
                message = gr.Markdown()
                bars = gr.Label(label='labels above the threshold (first image)')
                maps = gr.Gallery(label='attention map of each label', columns=4, height='auto')
                table = gr.Dataframe(headers=['image', 'labels'], label='every image')
                with gr.Accordion('all scores', open=False):
                    scores = gr.JSON()
                with gr.Accordion('model', open=False):
                    card = gr.Markdown(page.card())
        outputs = [bars, maps, table, scores, message]
        button.click(page.label, [files, camera, thr, tuned], outputs, api_name='label')
        set_classes.click(page.set_classes, [classes], [card, message], api_name='set_classes')
        blocks.load(page.card, None, card, api_name='card')
    return blocks


def main(argv=None):
    values, explicit = flags.parse(build_parser(), argv)
    if values['thresholds']:
        load_thresholds(values['thresholds'])  # (a bad file is named before the model loads)
    settings = resolve.inference_settings(values, explicit)
    if values['demo']:
        demo_checkpoint(settings)
    elif not settings.model_path:
        raise UserError("no checkpoint given: pass --model-path FILE (a best.pth, model-zoo file or .onnx), or --demo")
    device = distributed.resolve_device(settings.device)
    print(precision_line(settings, device), flush=True)
    labeller = Labeller(settings, device, thr=values['thr'], thresholds_file=values['thresholds'],
                        top_k=values['top_k'], text=(values['text_encoder'], values['text_names'], values['prompts']))
    examples = []
    if values['demo']:
        folder = os.path.join(demo_coco_root(), 'val2014')
        examples = [os.path.join(folder, n) for n in sorted(os.listdir(folder))[:DEMO_EXAMPLES]]
    uploads = tempfile.mkdtemp(prefix='ml_decoder_page_')  # (Gradio keeps uploads here; removed at exit)
    os.environ['GRADIO_TEMP_DIR'] = uploads
    atexit.register(shutil.rmtree, uploads, ignore_errors=True)
    blocks = build_page(labeller, examples)
    print(f"serving {settings.model_path} on http://{values['host']}:{values['port']}/ (Ctrl-C to stop)", flush=True)
    blocks.queue().launch(server_name=values['host'], server_port=values['port'], max_file_size=values['max_file_size'],
                          allowed_paths=[os.path.dirname(p) for p in examples[:1]], quiet=True)
    return 0


if __name__ == '__main__':
    run.run_main(main)
