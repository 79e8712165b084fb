"""Issue 4's GPU targets, checked against a gpu_all.sh log: one line per target, met or missed, with its numbers.

    python benchmarks/check_targets.py gpu_all.log      # gpu_all.sh runs it at the end of its main part

It reads the last main part of the log (from '# == main' to '# == main done after N s'), where each benchmark
printed its table; a target without a table there is reported as not measured. For each target the best fast
mode that keeps to its memory limit counts, against the published mode measured in the same table.
Exit status 0 when every target is met.
"""
import argparse
import re
import sys

# (what, task, model, image size, batch, classes, at least this x published, peak GiB at most)
TARGETS = [
    ('TResNet-L 448 training, batch 56', 'train', 'tresnet_l', 448, 56, 80, 3.0, 13.0),
    ('TResNet-L 448 inference, batch 64', 'infer', 'tresnet_l', 448, 64, 80, 2.5, None),
    ('TResNet-M 224 training, batch 128', 'train', 'tresnet_m', 224, 128, 80, 2.0, None),
    ('TResNet-XL 640 training, batch 16', 'train', 'tresnet_xl', 640, 16, 80, 2.0, None),
]
MAIN_SECONDS = 8 * 60

TITLE = re.compile(r'^# (train|infer) (\S+) (\d+)px, batch (\d+), (\d+) classes')
ROW = re.compile(r'^\| (\S+)\s*\|\s*(\S+) \|\s*(\S+)x \|\s*(\S+) \|\s*(\S+) \|\s*(\S+) \|')
MAIN_START, MAIN_DONE = '# == main', re.compile(r'^# == main done after (\d+) s')


def last_main_part(lines):
    """The lines of the last main part (up to the end of the log if it was cut short), and its time in s or None."""
    starts = [i for i, line in enumerate(lines) if line.startswith(MAIN_START) and not MAIN_DONE.match(line)]
    if not starts:
        return [], None
    part = lines[starts[-1]:]
    for i, line in enumerate(part):
        done = MAIN_DONE.match(line)
        if done:
            return part[:i], int(done.group(1))
    return part, None


def read_tables(lines):
    """{(task, model, size, batch, classes): {mode: (images/s, ratio, peak GiB, first step s)}}; a later table
    of the same measurement replaces an earlier one (a fallback run)."""
    tables, current = {}, None
    for line in lines:
        title = TITLE.match(line)
        if title:
            task, model, size, batch, classes = title.groups()
            current = tables[(task, model, int(size), int(batch), int(classes))] = {}
            continue
        if not line.startswith('|'):
            current = None  # the table ended
            continue
        row = ROW.match(line)
        if row and current is not None and row.group(1) != 'mode':
            mode, rate, ratio, peak, _, first_step = row.groups()
            current[mode] = tuple(float(v) for v in (rate, ratio, peak, first_step))
    return tables


def verdicts(tables, main_seconds):
    """[(met: bool or None, line)]: None for a target that was not measured."""
    out = []
    for what, *key, at_least, max_peak in TARGETS:
        rows = tables.get(tuple(key))
        if not rows or 'published' not in rows or len(rows) < 2:
            out.append((None, f"not measured  {what}: no table with the published mode and a fast mode"))
            continue
        fast = {mode: r for mode, r in rows.items() if mode != 'published'}
        allowed = {mode: r for mode, r in fast.items() if max_peak is None or r[2] <= max_peak}
        mode, (rate, _, peak, first_step) = max((allowed or fast).items(), key=lambda item: item[1][0])
        ratio = rate / rows['published'][0]  # not the table's ratio: that is rounded to 2 decimals
        met = ratio >= at_least and (max_peak is None or peak <= max_peak)
        limit = f", peak {peak:.2f} GiB (at most {max_peak:g})" if max_peak is not None else f", peak {peak:.2f} GiB"
        out.append((met, f"{'met' if met else 'MISSED':13} {what}: {mode} {ratio:.2f}x (at least {at_least:g}x; "
                         f"{rate:.1f} against {rows['published'][0]:.1f} images/s){limit}, first step (compile) "
                         f"{first_step:.1f} s"))
    if main_seconds is None:
        out.append((None, "not measured  gpu_all.sh main under 8 minutes: the log has no '# == main done' line"))
    else:
        met = main_seconds < MAIN_SECONDS
        out.append((met, f"{'met' if met else 'MISSED':13} gpu_all.sh main under 8 minutes: {main_seconds} s"))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('log', help='the log that gpu_all.sh wrote')
    args = parser.parse_args()
    try:
        with open(args.log) as f:
            lines = f.read().splitlines()
    except OSError as error:
        sys.exit(f"error: cannot read {args.log}: {error.strerror}")
    part, seconds = last_main_part(lines)
    results = verdicts(read_tables(part), seconds)
    print('# issue 4 targets (check_targets.py):')
    for _, line in results:
        print('  ' + line)
    return 0 if all(met for met, _ in results) else 1


if __name__ == '__main__':
    sys.exit(main())
