"""Training data: annotation readers for every supported layout, augmentation, batches.

    load_annotations(labels, images, folds) -> [ImageRecord]   (layout detected from content)
    FaceDataset(records, TrainAugment(...), seed) -> (image (3, S, S), target dict)
    build_loader(dataset, batch_size, workers, num_replicas, rank) -> DataLoader, sampler
"""
from ..lazy import lazy_exports

# Each name is loaded from its module when first asked for (PEP 562): the readers need numpy
# and OpenCV only, so reading labels (or dlib's XML in the tests) never imports torch, which
# only the dataset and loader (``dataset``) need.
_HOMES = {
    "CROP_SCALES": "augment",
    "FaceSample": "augment",
    "TrainAugment": "augment",
    "crop": "augment",
    "mirror": "augment",
    "pad_to_square": "augment",
    "photometric_distort": "augment",
    "random_square_crop": "augment",
    "resize": "augment",
    "FaceDataset": "dataset",
    "ResumableDistributedSampler": "dataset",
    "build_loader": "dataset",
    "collate_faces": "dataset",
    "sample_from_record": "dataset",
    "sample_to_tensors": "dataset",
    "read_dlib_xml": "dlib_xml",
    "ellipse_bounding_box": "fddb",
    "ellipse_to_face_box": "fddb",
    "face_box_from_ellipse_box": "fddb",
    "parse_folds": "fddb",
    "read_fddb_annotations_json": "fddb",
    "read_fddb_folds": "fddb",
    "read_generic_csv": "generic",
    "read_generic_json": "generic",
    "LAYOUTS": "layouts",
    "detect_layout": "layouts",
    "load_annotations": "layouts",
    "ImageRecord": "records",
    "summarize": "records",
    "read_retinaface_labels": "wider",
    "read_wider_bbx_gt": "wider",
}


__getattr__, __dir__ = lazy_exports(__name__, {name: f".{home}" for name, home in _HOMES.items()})

__all__ = [
    "CROP_SCALES", "FaceSample", "TrainAugment", "crop", "mirror", "pad_to_square", "photometric_distort",
    "random_square_crop", "resize", "FaceDataset", "ResumableDistributedSampler", "build_loader", "collate_faces",
    "sample_from_record", "sample_to_tensors", "read_dlib_xml", "ellipse_bounding_box", "ellipse_to_face_box",
    "face_box_from_ellipse_box", "parse_folds", "read_fddb_annotations_json", "read_fddb_folds", "read_generic_csv",
    "read_generic_json", "LAYOUTS", "detect_layout", "load_annotations", "ImageRecord", "summarize",
    "read_retinaface_labels", "read_wider_bbx_gt",
]
