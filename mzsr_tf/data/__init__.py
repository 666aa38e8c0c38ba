"""Training data: patch records (TFRecord, HDF5) and the ``tf.data`` pipelines of both training stages.

Modules, one concept each:

- ``images``     the one image lister and reader: PNG/BMP/JPEG/TIFF as uint8 RGB, strict option
- ``patches``    the reference's patch recipe: grid, gradient filter, 8 augmentations, shuffle order
- ``records``    TFRecord (reference schema) and HDF5 writers, readers and checks
- ``build``      folders of HR images -> records + JSON sidecar (``scripts/generate_tfrecord.py``)
- ``pipelines``  ``pretrain_dataset`` (ILR/HR pairs) and ``meta_task_dataset`` (support/query tasks)
"""
from mzsr_tf.data.build import PatchRecipe, build_records
from mzsr_tf.data.images import ImageReadError, list_images, read_image
from mzsr_tf.data.pipelines import meta_task_dataset, pretrain_dataset, synthesize_task
from mzsr_tf.data.records import RecordError, read_patch_pairs, read_patches

__all__ = [
    "ImageReadError", "PatchRecipe", "RecordError", "build_records", "list_images",
    "meta_task_dataset", "pretrain_dataset", "read_image", "read_patch_pairs", "read_patches",
    "synthesize_task",
]
