"""The datasets' schemas (`dataset=NAME`, `dataset.KEY=...`): defaults and checks. Imports no
torch: composing a config, `--cfg job` and every refusal need only these."""

from dataclasses import dataclass, field

from mtlrun.config import check_each, check_range
from mtlrun.errors import ConfigError, listed


@dataclass
class TorchvisionDatasetConfig:
    """`dataset=mnist`, `fashion_mnist` or `cifar10`: torchvision's files, held in memory."""

    name: str
    root: str | None = None  # the folder of torchvision's files; null: $MTLRUN_DATA, else ./data
    download: bool = True  # torchvision downloads the files when they are missing (online only)
    # carved from the training images (60k for MNIST and FashionMNIST, 50k for CIFAR-10) with
    # the run's seed
    val_size: int = 5000
    # true: the encoders standardise their inputs (per-channel mean, std: PIXEL_STATISTICS)
    normalize: bool = False


@dataclass
class MultiMNISTConfig(TorchvisionDatasetConfig):
    """`dataset=multimnist` or `multifashion`: two overlapping images of the source (MNIST or
    FashionMNIST) per image. `root` and `download` are those of the source's files;
    `val_size` is carved from the 60k training images with the run's seed."""

    # draws each image's partner: the dataset's seed, not the run's, so runs compare on one
    # dataset
    seed: int = 0
    # where the composed images are cached: null = $MTLRUN_CACHE, else ~/.cache/mtlrun
    cache_dir: str | None = None


@dataclass
class SyntheticImagesConfig:
    """`dataset=synthetic`: generated images with class labels; needs no files (tests, smoke
    runs)."""

    name: str
    n_train: int = 2048
    n_test: int = 512
    val_size: int = 256
    channels: int = 1
    image_size: int = 28
    num_classes: int = 10
    noise: float = 0.1  # standard deviation of the Gaussian pixel noise
    seed: int = 0
    # "digit" (10 classes) also provides the derived parity and magnitude labels,
    # so the MNIST experiments run on this data unchanged.
    target_name: str = "class"

    def check(self, key: str) -> None:
        check_split_sizes(key, self.n_train, self.n_test)


def check_split_sizes(key: str, n_train: int, n_test: int) -> None:
    """A generated dataset's sizes: an empty split is named by the key that made it so."""
    check_range(f"{key}.n_train", n_train, 1)
    check_range(f"{key}.n_test", n_test, 1)


@dataclass
class SyntheticRegressionConfig:
    """`dataset=synthetic_regression`: regression tasks y0..y{num_tasks-1} on vectors, sharing a
    known low-dimensional structure; the last task's training target is known on only
    `low_data_examples` examples. Needs no files."""

    name: str
    n_train: int = 2000
    n_test: int = 2000
    val_size: int = 200
    input_dim: int = 32  # D: inputs are N(0, I_D) vectors
    latent_dim: int = 3  # k: every target reads the same k-dimensional projection of the input
    # targets y0, y1, ..., y{num_tasks - 1}: +task@tasks.y0=regression (its target: its name)
    num_tasks: int = 4
    noise: float = 0.1  # each task's own noise (standard deviation)
    low_data_examples: int = 20  # the last task keeps its training target on this many examples
    # null: inputs x ~ N(0, I_D); a number σ: inputs near the k-dim subspace, x = sBᵀ + σε
    input_noise: float | None = None
    seed: int = 0

    def check(self, key: str) -> None:
        check_split_sizes(key, self.n_train, self.n_test)


@dataclass
class ImageFolderConfig:
    """`dataset=image_folder`: your own images in torchvision's ImageFolder layout,
    train_dir/<class>/<image>."""

    name: str
    train_dir: str = "???"  # required
    test_dir: str | None = None  # null: hold out `test_size` images of train_dir
    test_size: int = 1000
    val_size: int = 1000
    image_size: int = 32  # images are resized to image_size × image_size
    channels: int = 3  # 1: grayscale, 3: RGB
    target_name: str = "class"
    seed: int = 0  # draws the held-out test images when there is no test_dir


@dataclass
class ArraysConfig:
    """`dataset=arrays`: your own arrays, .npz files holding `images` (uint8 N×H×W×C or
    N×C×H×W) and integer `labels`."""

    name: str
    train_file: str = "???"  # required
    test_file: str = "???"  # required
    val_size: int = 1000
    target_name: str = "class"


@dataclass
class DenseScenesConfig:
    """`dataset=nyuv2` or `cityscapes`: the `.npy` layout MTAN (Liu et al. 2019) and LibMTL
    preprocess them into, `root/{train,val}/{image,label,depth,normal}/<i>.npy` (Cityscapes: no
    normal; MTAN's download keeps its 7-class labels in `label_7`, LibMTL's in `label`). The
    published tables train on train/ and report val/, which is therefore the test split here."""

    name: str
    root: str | None = None  # null: $MTLRUN_DATA/<name>, else ./data/<name>
    # the folder of the class maps under train/ and val/: null is the dataset's usual one
    # (nyuv2: label; cityscapes: label_7 if it is there, else label)
    label_folder: str | None = None
    # carved from train/ with the run's seed; 0 (the papers' setting) trains on all of it
    val_size: int = 0
    # The standard augmentation of training batches (MTAN's and LibMTL's RandomScaleCrop, on
    # the device): each image is cropped to 1/s of its sides at a random place, s drawn from
    # `augment_scales`, and resized back (depth divided by s), then flipped left-right with
    # probability 1/2 when `augment_flip` (normals' x negated). Off in the original papers.
    augment: bool = False
    augment_scales: list[float] = field(default_factory=lambda: [1.0, 1.2, 1.5])
    augment_flip: bool = True

    def check(self, key: str) -> None:
        check_range(f"{key}.val_size", self.val_size, 0)
        if not self.augment_scales:
            raise ConfigError(f"{key}.augment_scales is empty; give one or more, e.g. [1.0, 1.2]")
        check_each(f"{key}.augment_scales", self.augment_scales, 1)


# The 40 attributes of CelebA's list_attr_celeba.txt, in its order.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip


@dataclass
class CelebAConfig:
    """`dataset=celeba`: CelebA's aligned faces through torchvision's loader (root/celeba/:
    img_align_celeba/ and its list files), each attribute a binary target named as in
    list_attr_celeba.txt; the official partition (list_eval_partition.txt) gives the train,
    validation and test splits. Images are resized to image_size² as Sener & Koltun (2018) do
    (64: their configs.json) and held as uint8."""

    name: str
    root: str | None = None  # the folder holding celeba/; null: $MTLRUN_DATA, else ./data
    # torchvision downloads the files from Google Drive when missing (needs gdown; the Drive
    # quota often refuses it): off by default
    download: bool = False
    attributes: list[str] | None = None  # null: all 40
    image_size: int = 64
    # torchvision's md5 checks of the list files; false reads files that are not the
    # published ones (a small fixture, a corrected copy)
    verify_checksums: bool = True
    # where the decoded, resized images are cached: null = $MTLRUN_CACHE, else ~/.cache/mtlrun
    cache_dir: str | None = None

    def check(self, key: str) -> None:
        check_range(f"{key}.image_size", self.image_size, 8)
        if self.attributes is not None:
            if not self.attributes:
                raise ConfigError(f"{key}.attributes is empty; name one or more, or null for all")
            for attribute in self.attributes:
                if attribute not in CELEBA_ATTRIBUTES:
                    raise ConfigError(
                        f"{key}.attributes names {attribute!r}, not one of CelebA's 40: "
                        f"{listed(CELEBA_ATTRIBUTES, 'see the header of list_attr_celeba.txt')}"
                    )
            if len(set(self.attributes)) < len(self.attributes):
                raise ConfigError(f"{key}.attributes={self.attributes} names one twice")


@dataclass
class DenseMNISTConfig(TorchvisionDatasetConfig):
    """`dataset=dense_mnist`: MultiMNIST canvases (two digits, 32×32) with per-pixel targets:
    `segmentation` (11 classes: the digits 0-9 and background 10; IGNORE_LABEL on faint stroke
    edges), `depth` (each digit a relief at a depth set by its class, in front of a far
    background) and `normal` (that surface's normals, the zero vector across occluding edges).
    Built from the first `n_train` and `n_test` of MNIST's training and test images in
    `dataset.root` (null: $MTLRUN_DATA, else ./data)."""

    n_train: int = 6000
    n_test: int = 1000
    val_size: int = 500  # carved from the n_train examples with the run's seed
    seed: int = 0  # draws each digit's partner: the dataset's seed, not the run's

    def check(self, key: str) -> None:
        check_range(f"{key}.n_train", self.n_train, 1)
        check_range(f"{key}.n_test", self.n_test, 1)
