"""Training data: annotation readers for every supported layout, augmentation, batches.

    load_annotations(labels, images, folds) -> [ImageRecord]   (layout detected from content)
    FaceDataset(records, TrainAugment(...), seed) -> (image (3, S, S), target dict)
    build_loader(dataset, batch_size, workers, num_replicas, rank) -> DataLoader, sampler
"""
from .augment import CROP_SCALES, FaceSample, TrainAugment, crop, mirror, pad_to_square, photometric_distort, random_square_crop, resize
from .dataset import FaceDataset, ResumableDistributedSampler, build_loader, collate_faces, sample_from_record, sample_to_tensors
from .dlib_xml import read_dlib_xml
from .fddb import ellipse_bounding_box, ellipse_to_face_box, face_box_from_ellipse_box, parse_folds, read_fddb_annotations_json, read_fddb_folds
from .generic import read_generic_csv, read_generic_json
from .layouts import LAYOUTS, detect_layout, load_annotations
from .records import ImageRecord, summarize
from .wider import read_retinaface_labels, read_wider_bbx_gt

__all__ = [
    "CROP_SCALES", "FaceSample", "TrainAugment", "crop", "mirror", "pad_to_square", "photometric_distort",
    "random_square_crop", "resize", "FaceDataset", "ResumableDistributedSampler", "build_loader", "collate_faces",
    "sample_from_record", "sample_to_tensors", "read_dlib_xml", "ellipse_bounding_box", "ellipse_to_face_box",
    "face_box_from_ellipse_box", "parse_folds", "read_fddb_annotations_json", "read_fddb_folds", "read_generic_csv",
    "read_generic_json", "LAYOUTS", "detect_layout", "load_annotations", "ImageRecord", "summarize",
    "read_retinaface_labels", "read_wider_bbx_gt",
]
