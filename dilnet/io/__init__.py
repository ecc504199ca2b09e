"""Reading and writing: model configs as JSON-able dicts (`config`), summary tables
(`summary`), weights checkpoints with checksums (`weights`), training configs
(`train_config`) and volume files (`volume`)."""
