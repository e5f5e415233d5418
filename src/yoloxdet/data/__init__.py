"""Datasets (COCO JSON, Pascal VOC XML, YOLO txt), the official augmentation pipeline, loaders and data
checks.

Typical training use::

    spec = spec.load_dataset_spec("data.yaml")
    # checks once per content hash
    dataset = checks.checked_dataset(spec, "train", cache_dir="runs/.data-checks")
    loader = loader.build_train_loader(
        dataset, batch_size=16, input_size=(640, 640), augment=resolved, seed=0
    )
    loader.set_epoch(epoch, mosaic=True)  # False for the no-aug phase

Import from the modules (``yoloxdet.data.spec``, ``.checks``, ``.datasets``, ``.loader``, ``.augment``); this
package file imports nothing, so that inference, which needs only ``transforms``, stays light.
"""
