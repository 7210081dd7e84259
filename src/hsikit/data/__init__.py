"""hsikit.data: the dataset registry, the checksum-verified download cache and scene loaders."""

from hsikit.data.download import (
    FileStatus,
    dataset_status,
    download_dataset,
    download_file,
    ensure_file,
    file_sha256,
    sha256_file,
    verify_file,
    write_arad1k_split_lists,
)
from hsikit.data.loaders import Scene, load_dataset, registered_loaders
from hsikit.data.paths import data_dir, shared_data_dir
from hsikit.data.registry import (
    CAVE_SCENES,
    DatasetInfo,
    RemoteFile,
    arad1k_split_names,
    dataset_info,
    format_dataset_table,
    list_datasets,
    register_dataset,
    resolve_name,
)
