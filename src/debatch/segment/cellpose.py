"""cellpose segmentation (``segment.method: cellpose``): nuclei and whole cells from a built-in
or a trained cellpose model, paired one-to-one so every downstream table stays the same.

Works with the installed cellpose major version: 3.x (pinned; CPnet, 6.6 M parameters, seconds
per image on a CPU; built-ins ``nuclei``, ``cyto3``, ...) or 4.x (``cpsam``, a 305 M-parameter
transformer meant for GPUs). A built-in model's weight file is looked for in cellpose's model
folder *before* cellpose is asked to load it: cellpose would otherwise try to download it with
no timeout, which on an offline machine is a hang. A missing file is one ValueError line.

Nuclei come from ``nuclei_model`` on the nuclei channel, cells from ``cell_model`` on (cell
channel, nuclei channel), cellpose's own channel convention; or, with ``cell_model: null``,
cells grow from the cellpose nuclei by the classical propagation (``segment.propagate``).
Settings: ``segment.cellpose`` (debatch.settings.CELLPOSE).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import urllib.request
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

from debatch.core.compiled import import_with_numba_cache
from debatch.core.device import resolve_device
from debatch.core.io import atomic_path
from debatch.segment.propagate import segment_cells
from debatch.settings import CELLPOSE, Channels

log = logging.getLogger(__name__)

# Base widths of cellpose 3's standard CPnet; trained models may be narrower (see train_model).
_STANDARD_WIDTHS = [32, 64, 128, 256]


class CellposeError(ValueError):
    """A cellpose model that cannot be used; the message names the model and the config key."""


def _cellpose():
    """(cellpose.models, major version); imported lazily: cellpose pulls in numba and OpenCV."""
    try:
        models = import_with_numba_cache("cellpose.models")  # dynamics compiles as imported
        from cellpose import version
    except ImportError as error:
        raise CellposeError(
            f"segment.method is cellpose but cellpose cannot be imported "
            f"({error}); pip install --no-deps -r workflow/envs/cellpose-requirements.txt"
        ) from None
    return models, int(str(version).split(".")[0])


def _builtin_weights(name: str) -> tuple[Path, str] | None:
    """(expected weight file, download URL) of a built-in model of the installed cellpose."""
    models, major = _cellpose()
    if name not in models.MODEL_NAMES:
        return None
    if major >= 4:
        return Path(models.MODEL_DIR) / name, f"{models._MODEL_URL}{name}"
    basename = f"{name}torch_0" if name in ("cyto", "cyto2", "nuclei") else name
    return Path(models.MODEL_DIR) / basename, f"{models._MODEL_URL}/{basename}"


def reachable(url: str, timeout: float) -> bool:
    """True when ``url`` answers within ``timeout`` seconds (False at once for timeout 0)."""
    if timeout <= 0:
        return False
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except Exception:  # DNS, refused, timeout, HTTP error: all mean "cannot download"
        return False


def resolve_model(spec: str, key: str, timeout: float) -> str:
    """A trained model's path, or a built-in name whose weights are present or downloadable."""
    path = Path(spec).expanduser()
    if path.is_file():
        return str(path)
    models, major = _cellpose()
    found = _builtin_weights(spec)
    if found is None:
        raise CellposeError(
            f"segment.cellpose.{key} {spec!r} is neither a model file nor a "
            f"built-in model of cellpose {major} "
            f"(built-in: {', '.join(models.MODEL_NAMES)})"
        )
    weights, url = found
    if not weights.is_file() and not reachable(url, timeout):
        raise CellposeError(
            f"cellpose model {spec!r} ({key}): weights not found at {weights} and "
            f"{url} is unreachable (offline?); copy the file there or set "
            f"segment.cellpose.{key} to the path of a trained model"
        )
    return spec


def _device(choice: str):
    try:
        return resolve_device(choice, "segment.cellpose.device")
    except ValueError as error:
        raise CellposeError(str(error)) from None


def _widths(path: str) -> list[int]:
    """[input channels, base widths...] of a cellpose 3 CPnet weight file."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    convs = sorted(
        (
            k
            for k in state
            if k.startswith("downsample.down.res_down_") and k.endswith("conv_0.2.weight")
        ),
        key=lambda k: int(k.split("res_down_")[1].split(".")[0]),
    )
    if not convs:
        raise CellposeError(f"cellpose model file {path} holds no cellpose 3 network weights")
    return [int(state[convs[0]].shape[1])] + [int(state[k].shape[0]) for k in convs]


def _load_file(models, major: int, path: str, torch_device):
    gpu = torch_device.type == "cuda"
    if major >= 4:
        return models.CellposeModel(gpu=gpu, device=torch_device, pretrained_model=path)
    widths = _widths(path)
    if widths[1:] == _STANDARD_WIDTHS:
        return models.CellposeModel(
            gpu=gpu, device=torch_device, pretrained_model=path, nchan=widths[0]
        )
    # A narrower CPnet (train_model's small models): cellpose 3 fixes the widths, so swap the net.
    from cellpose.resnet_torch import CPnet

    model = models.CellposeModel(
        gpu=gpu, device=torch_device, pretrained_model=False, nchan=widths[0]
    )
    net = CPnet(widths, 3, sz=3, mkldnn=False, max_pool=True).to(torch_device)
    net.load_model(path, device=torch_device)
    model.net, model.pretrained_model = net, path
    model.diam_mean = float(net.diam_mean.item())
    model.diam_labels = float(net.diam_labels.item())
    return model


def load_model(spec: str, key: str, device: str = "auto", timeout: float = 10.0):
    """A cellpose model ready to ``eval``, from a built-in name or a trained model file."""
    models, major = _cellpose()
    torch_device = _device(device)
    resolved = resolve_model(spec, key, timeout)
    if not Path(resolved).is_file():
        name = {"pretrained_model": resolved} if major >= 4 else {"model_type": resolved}
        return models.CellposeModel(gpu=torch_device.type == "cuda", device=torch_device, **name)
    try:
        return _load_file(models, major, resolved, torch_device)
    except CellposeError:
        raise
    except Exception as error:  # unpickling, shape or key mismatches: a file that is no such model
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CellposeError(
            f"segment.cellpose.{key}: cannot load {resolved} as a cellpose {major} "
            f"model ({type(error).__name__}: {first_line})"
        ) from None


def _run_model(
    model, stacks: list[np.ndarray], diameter: float | None, cellpose: dict
) -> list[np.ndarray]:
    """Label images (int32) of same-shaped (Y, X, C) stacks, evaluated in one cellpose call."""
    _, major = _cellpose()
    batch = np.stack(stacks).astype(np.float32)
    options = dict(
        diameter=diameter,
        flow_threshold=cellpose["flow_threshold"],
        batch_size=cellpose["batch_size"],
        cellprob_threshold=cellpose["cellprob_threshold"],
        min_size=cellpose["min_size"],
    )
    if len(batch) == 1:
        masks = [model.eval(batch[0], channel_axis=2, **options)[0]]
    else:
        z_axis = {} if major >= 4 else {"z_axis": 0}
        masks = list(model.eval(batch, channel_axis=3, **z_axis, **options)[0])
    return [np.asarray(m, np.int32) for m in masks]


def _keep_nucleus_piece(cells: np.ndarray, nuclei: np.ndarray) -> np.ndarray:
    """Each cell reduced to its connected piece that holds its nucleus."""
    kept = np.zeros_like(cells)
    for label, box in enumerate(ndimage.find_objects(cells), start=1):
        if box is None:
            continue
        pieces, _ = ndimage.label(cells[box] == label, np.ones((3, 3), bool))
        anchors = np.unique(pieces[nuclei[box] == label])
        kept[box][np.isin(pieces, anchors[anchors > 0])] = label
    return kept


def pair_objects(nuclei: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Pair independently segmented nuclei and cells one-to-one.

    Each nucleus goes to the cell it overlaps most; a cell claimed by several nuclei keeps the
    one it overlaps most. Pairs are relabelled 1..n in nucleus order, the nucleus pixels join
    their cell, and each cell keeps only its piece connected to its nucleus. Returns (nuclei,
    cells, nuclei without a cell of their own, cells without a nucleus).
    """
    nuclei, cells = np.asarray(nuclei, np.int64), np.asarray(cells, np.int64)
    n_nuclei, n_cells = int(nuclei.max()), int(cells.max())
    both = (nuclei > 0) & (cells > 0)
    pairs, overlap = np.unique(nuclei[both] * (n_cells + 1) + cells[both], return_counts=True)
    nucleus_of, cell_of = pairs // (n_cells + 1), pairs % (n_cells + 1)
    # best cell per nucleus, then best nucleus per cell (stable sorts: ties go to lower labels)
    order = np.lexsort((cell_of, -overlap, nucleus_of))
    first = np.unique(nucleus_of[order], return_index=True)[1]
    chosen = order[first]
    order = chosen[np.lexsort((nucleus_of[chosen], -overlap[chosen], cell_of[chosen]))]
    first = np.unique(cell_of[order], return_index=True)[1]
    kept = np.sort(order[first])  # sorted pair index = nucleus order
    new_label = np.arange(1, len(kept) + 1)
    nucleus_map = np.zeros(n_nuclei + 1, np.int32)
    nucleus_map[nucleus_of[kept]] = new_label
    cell_map = np.zeros(n_cells + 1, np.int32)
    cell_map[cell_of[kept]] = new_label
    paired_nuclei = nucleus_map[nuclei]
    paired_cells = cell_map[cells]
    paired_cells[paired_nuclei > 0] = paired_nuclei[paired_nuclei > 0]
    paired_cells = _keep_nucleus_piece(paired_cells, paired_nuclei)
    lost_nuclei = len(np.setdiff1d(np.unique(nuclei), [0])) - len(kept)
    lost_cells = len(np.setdiff1d(np.unique(cells), [0])) - len(kept)
    return paired_nuclei, paired_cells, lost_nuclei, lost_cells


class CellposeSegmenter:
    """Segments sites with cellpose; models are loaded once per job (one per compartment)."""

    def __init__(self, params: dict | None, propagate: dict | None = None, threads: int = 1):
        import torch

        self.cellpose = CELLPOSE.merge(params)
        self.propagate = propagate
        torch.set_num_threads(max(1, threads))
        timeout = self.cellpose["download_timeout"]
        device = self.cellpose["device"]
        self.nuclei_model = load_model(
            self.cellpose["nuclei_model"], "nuclei_model", device, timeout
        )
        self.cell_model = (
            None
            if self.cellpose["cell_model"] is None
            else load_model(self.cellpose["cell_model"], "cell_model", device, timeout)
        )
        # cellpose logs per image (and warns that a batch of sites "is a 3D stack"): keep the
        # job log to debatch's own per-site lines
        for name in (
            "cellpose",
            "cellpose.models",
            "cellpose.core",
            "cellpose.dynamics",
            "cellpose.transforms",
        ):
            logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message="Sparse invariant checks")
        log.info(
            "cellpose on %s: nuclei %s, cells %s",
            self.nuclei_model.device,
            self.cellpose["nuclei_model"],
            self.cellpose["cell_model"] or "propagated from the nuclei",
        )

    def __call__(
        self,
        sites: list[dict[str, np.ndarray]],
        channels: Channels,
        scales: list[float] | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray, int, int]]:
        """(nuclei, cells, unpaired nuclei, unpaired cells) per site, label i = the same cell.
        ``scales`` put each site on CellProfiler's 0-1 scale when cells are propagated."""
        scales = scales or [1.0] * len(sites)
        results: list = [None] * len(sites)
        step = self.cellpose["sites_per_call"]
        for start in range(0, len(sites), step):
            by_shape: dict[tuple, list[int]] = {}
            for index in range(start, min(start + step, len(sites))):
                by_shape.setdefault(sites[index][channels.nuclei].shape, []).append(index)
            for indices in by_shape.values():
                group = [sites[index] for index in indices]
                scale = [scales[index] for index in indices]
                segmented = self._segment(group, scale, channels.nuclei, channels.cell)
                for index, result in zip(indices, segmented):
                    results[index] = result
        return results

    def _segment(self, group, scales, nuclei_channel, cell_channel):
        zeros = np.zeros(group[0][nuclei_channel].shape, np.float32)
        stacks = [np.dstack([site[nuclei_channel], zeros]) for site in group]
        nuclei = _run_model(
            self.nuclei_model, stacks, self.cellpose["nucleus_diameter"], self.cellpose
        )
        if self.cell_model is None:
            return [
                (n, segment_cells(n, site[cell_channel], self.propagate, scale), 0, 0)
                for site, n, scale in zip(group, nuclei, scales)
            ]
        stacks = [np.dstack([site[cell_channel], site[nuclei_channel]]) for site in group]
        cells = _run_model(self.cell_model, stacks, self.cellpose["cell_diameter"], self.cellpose)
        return [pair_objects(n, c) for n, c in zip(nuclei, cells)]


def train_model(
    images: list[np.ndarray],
    masks: list[np.ndarray],
    path: str | Path,
    *,
    width: int = 32,
    epochs: int = 100,
    learning_rate: float = 0.02,
    crop: int = 224,
    images_per_epoch: int | None = None,
    seed: int = 0,
) -> Path:
    """Train a cellpose 3 network from scratch on (C=2, Y, X) images and their label images.

    ``width`` 32 is cellpose's standard CPnet (loadable by cellpose itself); smaller widths give
    a narrower net that trains in seconds on a CPU (for tests and quick looks), loadable with
    load_model. Objects keep their size (no rescaling), so the model's diameter is the masks'.
    """
    import torch

    _, major = _cellpose()  # first: cellpose imported with numba's cache
    from cellpose import train as cellpose_train
    from cellpose.resnet_torch import CPnet
    from cellpose.utils import diameters

    if major >= 4:
        raise CellposeError("train_model trains cellpose 3 networks; cellpose 4 fine-tunes cpsam")
    # diam_mean = the training objects' mean diameter (as cellpose measures it), so evaluating
    # with diameter null runs at scale 1 and a given diameter rescales relative to the training.
    size = float(np.mean([diameters(m)[0] for m in masks]))
    torch.manual_seed(seed)
    net = CPnet(
        [images[0].shape[0], width, 2 * width, 4 * width, 256],
        3,
        sz=3,
        max_pool=True,
        diam_mean=size,
    )
    with tempfile.TemporaryDirectory() as folder:
        trained, _, _ = cellpose_train.train_seg(
            net,
            train_data=list(images),
            train_labels=list(masks),
            channel_axis=0,
            batch_size=8,
            n_epochs=epochs,
            learning_rate=learning_rate,
            weight_decay=1e-4,
            save_path=folder,
            model_name="model",
            bsize=crop,
            min_train_masks=1,
            rescale=False,
            nimg_per_epoch=images_per_epoch,
        )
        with atomic_path(path) as tmp:
            shutil.copyfile(trained, tmp)
    return Path(path)
