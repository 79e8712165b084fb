"""The labelling page's start-up and per-image latency on this machine (app.py with the demo checkpoint).

    python benchmarks/bench_app.py --model-path outputs/demo/best.pth --images 20

Measured: seconds from starting app.py to its port being served and to the page answering (HTTP 200); then per
image, through gradio_client's /label endpoint (labels, every score and the attention map of each label), and
through src_files/inference/page.py's Labeller in this process (labels only, and labels with maps from the same
forward), each image once
after two warm-up calls. The images are the demo's validation images (256 px JPEGs).
"""
import argparse
import os
import statistics
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools.screenshot_app import free_port, start_app  # noqa: E402


def timed(fn, items):
    for item in items[:2]:
        fn(item)
    times = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times), 1000 * max(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model-path', default=os.path.join('outputs', 'demo', 'best.pth'))
    parser.add_argument('--images', type=int, default=20)
    args = parser.parse_args(argv)
    import torch
    from gradio_client import Client, handle_file
    from src_files.data import demo_coco_root
    from src_files.inference.page import Labeller
    from src_files.models.config import ModelConfig
    from src_files.settings import InferenceSettings
    folder = os.path.join(demo_coco_root(), 'val2014')
    images = [os.path.join(folder, n) for n in sorted(os.listdir(folder))[:args.images]]
    port = free_port()
    process, served = start_app(['--model-path', args.model_path, '--device', 'cpu', '--thr', '0.5'], port)
    try:
        t0 = time.time()
        urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=60).read()
        page = served + time.time() - t0
        client = Client(f'http://127.0.0.1:{port}/', verbose=False)
        api = timed(lambda p: client.predict([handle_file(p)], None, 0.5, False, api_name='/label'), images)
    finally:
        process.terminate()
        process.wait(timeout=30)
    labeller = Labeller(InferenceSettings(model=ModelConfig(), model_path=args.model_path), torch.device('cpu'),
                        thr=0.5)
    direct = timed(labeller.label, images)
    with_maps = timed(lambda p: labeller.label(p, maps=True), images)
    print(f"torch threads {torch.get_num_threads()}, {len(images)} images")
    print("| what | ms per image (median) | max |\n|---|---:|---:|")
    print(f"| start-up: port served | {1000 * served:.0f} | |")
    print(f"| start-up: page answered (HTTP 200) | {1000 * page:.0f} | |")
    for name, (median, most) in (('gradio_client /label (labels, scores, maps)', api),
                                 ('Labeller.label, in process', direct),
                                 ('Labeller.label(maps=True), in process', with_maps)):
        print(f"| {name} | {median:.0f} | {most:.0f} |")
    return 0


if __name__ == '__main__':
    sys.exit(main())
