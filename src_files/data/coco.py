"""MS-COCO (2014 layout) as a multi-label dataset: one multi-hot target per annotated image."""
import contextlib
import io
import json
import os

from pycocotools.coco import COCO

from src_files.data.files import check_images_exist, require_dir, require_file
from src_files.data.image_list import ImageList
from src_files.errors import UserError

_REQUIRED_FIELDS = {'images': ('id', 'file_name'), 'annotations': ('id', 'image_id', 'category_id'),
                    'categories': ('id', 'name')}
_COCO_HINT = "expected the COCO 2014 layout: annotations/instances_{train,val}2014.json, train2014/, val2014/"


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


class CocoDetection(ImageList):
    """COCO images that have at least one annotation, with targets over all categories of `annFile`.

    Category ids in ascending order map to class indices 0..C-1 (COCO's 80 ids are not contiguous).
    """

    def __init__(self, root, annFile, transform=None):
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
        super().__init__(paths, label_ids, [self.coco.cats[c]['name'] for c in cat_ids], transform)


def coco_datasets(data_dir, train_transform, val_transform):
    """(train_set, val_set) of the COCO 2014 folder `data_dir`."""
    require_dir(data_dir, "COCO data folder", "pass the folder holding annotations/, train2014/ and val2014/")
    sets = []
    for split, transform in (('train', train_transform), ('val', val_transform)):
        sets.append(CocoDetection(os.path.join(data_dir, f'{split}2014'),
                                  os.path.join(data_dir, 'annotations', f'instances_{split}2014.json'),
                                  transform))
    return tuple(sets)
