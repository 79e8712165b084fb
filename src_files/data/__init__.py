"""Datasets: the multi-label ones return (image, float32 target [C]: 1 positive, 0 negative, -1 unknown), the
single-label ones (ImageFolder, CIFAR-100) (image, class index); all have `class_names`. `load_datasets` reads any
supported folder layout (COCO, VOC, CSV, YOLO, Open Images, ImageFolder, CIFAR-100).

formats       the layouts: detect a folder's, load its splits (DataSplits), describe what was read
coco          COCO 2014 / 2017 instances files
voc           Pascal VOC 2007 / 2012 (and VOC-format exports, with or without ImageSets/), difficult objects as
              unknown labels
csv_list      label CSVs (one-hot or tags; two files, per-split folders or one file for all images)
yolo          YOLO detection exports (data.yaml or classes.txt): an image's labels are its boxes' classes
holdout       the validation share of data that names no split, by a hash of each image's path
check         every image decoded once before training or scoring
openimages    Open Images V6 image-level labels (partial labels)
nus_wide      NUS-WIDE zero-shot splits and word vectors
single_label  ImageFolder and CIFAR-100
image_list    ImageList, the common dataset of image files with multi-label targets
labels        parsing label cells
files         file checks and image loading (one-line errors)
demo          the built-in demo data (coloured shapes), built on first use
digits        a small real-image set: scikit-learn's handwritten digits
layouts       writing a COCO folder in the other layouts (for tests and studies)
"""
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
