"""Train ML-Decoder on multi-label or single-label data, the published recipe or timm's A2; on CPU, one GPU or several.

    python train.py --demo                                   # built-in demo data, a few minutes on a CPU
    python train.py --data /path/to/coco --model-path tresnet_l_21k.pth
    python train.py --data /path/to/VOC2007 --model-path model.safetensors --model-name tresnet_m --image-size 224
    python train.py --data /path/to/cifar --data-format cifar100 --model-name tresnet_m --image-size 224 ...
    torchrun --nproc_per_node 8 train.py --data /path/to/coco --model-path tresnet_l_21k.pth
    torchrun --nproc_per_node 8 train.py --data /path/to/imagenet --recipe a2 --model-name tresnet_m ...

The loop itself is src_files/training/train_loop.py.
"""
import dataclasses

from src_files import distributed
from src_files.cli import flags, resolve, run
from src_files.models import create_model
from src_files.training.data import load_data
from src_files.training.optimisation import describe_recipe
from src_files.training.zero_shot import zero_shot_task
from src_files.training.train_loop import reseed_for_init, train


def build_parser():
    return flags.train_parser(__doc__.split('\n')[0])


def main(argv=None):
    values, explicit = flags.parse(build_parser(), argv)
    settings, state, finished = resolve.train_settings(values, explicit, 'train.py')
    if finished:
        print(finished)
        return 0
    info = distributed.setup(settings.run.device)
    task, num_classes = load_data(settings, info)
    settings = dataclasses.replace(settings, model=dataclasses.replace(settings.model, num_classes=num_classes))
    if settings.model.zsl:  # queries from the class names (--text-encoder), not a classifier of fixed classes
        task, settings = zero_shot_task(task, settings)
    if info.is_main:
        print(task.describe)
        recipe = describe_recipe(settings.optim, task.kind)
        if recipe:
            print(recipe)
    reseed_for_init(settings.optim.seed)
    model = create_model(settings.model, load_head=False, unsafe_load=settings.run.unsafe_load,
                         model_path='' if state is not None else settings.run.model_path,
                         drop_path_rate=settings.optim.drop_path)
    return train(settings, info, model, task, state)


if __name__ == '__main__':
    run.run_main(main)
