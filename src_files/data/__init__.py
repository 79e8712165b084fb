"""Datasets: the multi-label ones return (image, float32 target [C]: 1 positive, 0 negative, -1 unknown), the
single-label ones (ImageFolder, CIFAR-100) (image, class index); all have `class_names`. `load_datasets` reads any
supported folder layout (COCO, VOC, CSV, Open Images, ImageFolder, CIFAR-100)."""
from src_files.data.coco import CocoDetection, coco_datasets
from src_files.data.csv_list import MultiLabelCsv
from src_files.data.demo import demo_coco_root, demo_nus_root
from src_files.data.formats import FORMATS, DataSplits, detect_format, load_datasets
from src_files.data.image_list import UNKNOWN, ImageList, IndexLists
from src_files.data.layouts import LAYOUTS, demo_layout_root, export_layout
from src_files.data.nus_wide import NusWideZsl, load_nus_wide_zsl
from src_files.data.single_label import SingleLabelImages

__all__ = ['CocoDetection', 'coco_datasets', 'MultiLabelCsv', 'demo_coco_root', 'demo_nus_root', 'FORMATS',
           'DataSplits', 'detect_format', 'load_datasets', 'UNKNOWN', 'ImageList', 'IndexLists', 'LAYOUTS',
           'demo_layout_root', 'export_layout', 'NusWideZsl', 'load_nus_wide_zsl', 'SingleLabelImages']
