"""Datasets: every one returns (image, float32 multi-hot target [C]) and has `class_names`."""
from src_files.data.coco import CocoDetection, coco_datasets
from src_files.data.csv_list import MultiLabelCsv
from src_files.data.demo import demo_coco_root, demo_nus_root
from src_files.data.image_list import ImageList
from src_files.data.nus_wide import NusWideZsl, load_nus_wide_zsl

__all__ = ['CocoDetection', 'coco_datasets', 'MultiLabelCsv', 'demo_coco_root', 'demo_nus_root', 'ImageList',
           'NusWideZsl', 'load_nus_wide_zsl']
