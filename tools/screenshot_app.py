"""A screenshot of the labelling page (the README's picture): starts app.py, opens the page in headless Chromium,
uploads an image, clicks "label", waits for the attention maps and saves a PNG.

    python tools/screenshot_app.py --model-path outputs/demo/best.pth --out docs/app.png

Needs Debian's chromium and chromium-driver packages and the selenium package (not needed by the tests or CI).
"""
import argparse
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CHROMIUM_FLAGS = ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--window-size=1400,1150')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_app(args, port):
    """app.py in a subprocess, -> (process, seconds until it served its port)."""
    start = time.time()
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'app.py'), '--port', str(port)] + args,
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                               env=dict(os.environ, GRADIO_ANALYTICS_ENABLED='False'))
    while True:
        if process.poll() is not None:
            raise SystemExit(f"app.py ended with exit code {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(('127.0.0.1', port)) == 0:
                return process, time.time() - start
        if time.time() - start > 300:
            process.kill()
            raise SystemExit("app.py did not serve its port within 300 s")
        time.sleep(0.2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model-path', default=os.path.join('outputs', 'demo', 'best.pth'))
    parser.add_argument('--image', default=None, help="image to upload (default: a demo image)")
    parser.add_argument('--thr', default='0.7')
    parser.add_argument('--out', default=os.path.join('docs', 'app.png'))
    args = parser.parse_args(argv)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait
    image = args.image
    if image is None:
        from src_files.data import demo_coco_root
        folder = os.path.join(demo_coco_root(), 'val2014')
        image = os.path.join(folder, sorted(os.listdir(folder))[3])
    port = free_port()
    process, seconds = start_app(['--model-path', args.model_path, '--thr', args.thr, '--device', 'cpu'], port)
    print(f"app.py served its port after {seconds:.1f} s")
    options = webdriver.ChromeOptions()
    options.binary_location = '/usr/bin/chromium'
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service('/usr/bin/chromedriver'))
    try:
        driver.get(f'http://127.0.0.1:{port}/')
        wait = WebDriverWait(driver, 120)
        upload = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, 'input[type=file]')))
        upload.send_keys(os.path.abspath(image))
        time.sleep(1.5)
        driver.find_element(By.XPATH, "//button[normalize-space()='label']").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '.grid-wrap img, .gallery img, button img')) > 0)
        time.sleep(2.0)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        driver.save_screenshot(args.out)
        print(f"screenshot written to {args.out}")
    finally:
        driver.quit()
        process.terminate()
        process.wait(timeout=30)
    return 0


if __name__ == '__main__':
    sys.exit(main())
