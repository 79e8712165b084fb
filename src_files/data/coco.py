"""MS-COCO (2014 or 2017 layout) as a multi-label dataset: one multi-hot target per annotated image."""
import contextlib
import io
import json
import mmap
import os

from pycocotools.coco import COCO

from src_files.data.files import check_images_exist, require_dir, require_file
from src_files.data.image_list import ImageList, relative_ids
from src_files.errors import UserError

_REQUIRED_FIELDS = {'images': ('id', 'file_name'), 'annotations': ('id', 'image_id', 'category_id'),
                    'categories': ('id', 'name')}
YEARS = ('2014', '2017')  # the 2014 layout wins when a folder holds both
_COCO_HINT = ("expected the COCO 2014 layout: annotations/instances_{train,val}2014.json, train2014/, val2014/ "
              "(or the same with 2017)")


def _load_coco(ann_file):
    """Read a COCO annotation file into a pycocotools index, raising UserError if it is not one."""
    try:
        with open(ann_file, 'r', encoding='utf-8-sig') as f:  # -sig: a BOM some editors add is dropped
            dataset = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"not a valid COCO annotation file: {ann_file} ({error}; re-download it)") from None
    if not isinstance(dataset, dict) or any(not isinstance(dataset.get(k), list)
                                            for k in _REQUIRED_FIELDS):
        raise UserError(f"not a valid COCO annotation file: {ann_file} (needs 'images', 'annotations' and "
                        f"'categories' lists; re-download it)")
    for key, fields in _REQUIRED_FIELDS.items():
        if any(not isinstance(entry, dict) or any(f not in entry for f in fields) for entry in dataset[key]):
            raise UserError(f"not a valid COCO annotation file: {ann_file} (every entry of '{key}' needs "
                            f"fields {', '.join(fields)}; re-download it)")
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
        coco.createIndex()
    return coco


def _categories_near_end(ann_file, window=1 << 20):
    """The 'categories' list of a COCO file found from its end (where COCO writes it), None if not found there."""
    with open(ann_file, 'rb') as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        at = data.rfind(b'"categories"')
        if at < 0:
            return None
        text = data[at + len(b'"categories"'):at + window].decode('utf-8', errors='replace').lstrip()
    if not text.startswith(':'):  # the name as a value, not the key
        return None
    try:
        categories = json.JSONDecoder().raw_decode(text[1:].lstrip())[0]
    except json.JSONDecodeError:
        return None
    ok = isinstance(categories, list) and all(isinstance(c, dict) and 'id' in c and 'name' in c for c in categories)
    return categories if ok else None


def category_names(ann_file):
    """Category names in ascending id order (the class list), without reading the images and annotations when
    the 'categories' list is found near the end of the file (a COCO train file is ~0.5 GB)."""
    require_file(ann_file, "COCO annotation file", _COCO_HINT)
    try:
        categories = _categories_near_end(ann_file)
    except (OSError, ValueError):  # ValueError: mmap of an empty file
        categories = None
    if categories is None:
        categories = list(_load_coco(ann_file).cats.values())
    return [c['name'] for c in sorted(categories, key=lambda c: c['id'])]


class CocoDetection(ImageList):
    """COCO images that have at least one annotation, with targets over all categories of `annFile`.

    Category ids in ascending order map to class indices 0..C-1 (COCO's 80 ids are not contiguous). Images
    without annotations are dropped, as the published protocol does (counted in `dropped_unlabelled`).
    `data_dir`: the folder image ids are relative to (default: the image paths are the ids).
    """

    def __init__(self, root, annFile, transform=None, data_dir=None):
        require_dir(root, "COCO image folder", _COCO_HINT)
        require_file(annFile, "COCO annotation file", _COCO_HINT)
        self.root = root
        self.coco = _load_coco(annFile)
        cat_ids = sorted(self.coco.cats)
        self.cat2cat = {cat_id: index for index, cat_id in enumerate(cat_ids)}
        unknown = sorted({ann['category_id'] for ann in self.coco.anns.values()} - set(self.cat2cat))
        if unknown:
            raise UserError(f"not a valid COCO annotation file: {annFile} (annotations use category ids "
                            f"{unknown[:5]} that are not in 'categories'; re-download it)")
        self.ids = [image_id for image_id in self.coco.imgs if self.coco.imgToAnns.get(image_id)]
        if not self.ids:  # e.g. image_info_test2014.json, which lists images without annotations
            raise UserError(f"{annFile} has no annotated image; {_COCO_HINT}")
        paths = [os.path.join(root, self.coco.imgs[i]['file_name']) for i in self.ids]
        check_images_exist(paths, f"the image folder {root} does not match {annFile}")
        label_ids = [sorted({self.cat2cat[ann['category_id']] for ann in self.coco.imgToAnns[i]})
                     for i in self.ids]
        image_ids = None if data_dir is None else relative_ids(paths, data_dir)
        super().__init__(paths, label_ids, [self.coco.cats[c]['name'] for c in cat_ids], transform,
                         image_ids=image_ids)
        self.dropped_unlabelled = len(self.coco.imgs) - len(self.ids)


def coco_year(data_dir, splits=('train', 'val')):
    """'2014' or '2017': the COCO layout of `data_dir` (2014 when both are complete), None if neither is."""
    for year in YEARS:
        if all(os.path.isfile(os.path.join(data_dir, 'annotations', f'instances_{split}{year}.json')) and
               os.path.isdir(os.path.join(data_dir, f'{split}{year}')) for split in splits):
            return year
    return None


def coco_split(data_dir, split, transform=None, year=None):
    """The `split` ('train' or 'val') of the COCO folder `data_dir`; `year` default: coco_year(data_dir)."""
    year = year or coco_year(data_dir) or YEARS[0]
    return CocoDetection(os.path.join(data_dir, f'{split}{year}'),
                         os.path.join(data_dir, 'annotations', f'instances_{split}{year}.json'), transform,
                         data_dir=data_dir)


def coco_datasets(data_dir, train_transform, val_transform):
    """(train_set, val_set) of the COCO 2014 (or else 2017) folder `data_dir`; image ids relative to it."""
    require_dir(data_dir, "COCO data folder", "pass the folder holding annotations/, train2014/ and val2014/")
    year = coco_year(data_dir)
    return coco_split(data_dir, 'train', train_transform, year), coco_split(data_dir, 'val', val_transform, year)
