"""The run configuration: the seed-era ``sam_extract`` YAML, validated with pydantic.

Every key of the seed configuration is accepted with the defaults its README documents; unknown keys and bad values
are rejected with a one-line message that names the key. YAML is parsed with ``yaml.safe_load`` only.
Secrets are :class:`pydantic.SecretStr`, so they never print.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from oco_l3.errors import ConfigInvalid
from oco_l3.grids import MAX_CELLS_PER_SIDE
from oco_l3.missions import DEFAULT_MISSIONS, MISSION_KEYS, MISSIONS, check_mission, mission_spec

Method = Literal["linear", "cubic", "nearest"]
#: ``output.format``: the Zarr format of new stores (README "Output layout"; an existing store keeps its own).
StoreFormat = Literal["zarr2", "zarr3"]
#: A key of the mission registry (:data:`oco_l3.missions.MISSIONS`), validated.
Mission = Annotated[str, AfterValidator(check_mission)]
DEFAULT_CHUNKING = (250, 250, 5)  # latitude, longitude, time (seed README)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class S3Auth(_Model):
    accessKeyID: SecretStr | None = None
    secretAccessKey: SecretStr | None = None


class S3Object(_Model):
    """``{path: s3://bucket/key, accessKeyID, secretAccessKey, region?, endpoint?}`` (seed input item)."""

    path: str
    accessKeyID: SecretStr | None = None
    secretAccessKey: SecretStr | None = None
    region: str = "us-west-2"
    endpoint: str | None = None

    @field_validator("path")
    @classmethod
    def _s3_path(cls, v: str) -> str:
        if not v.startswith(("s3://", "/", "file://")) and "://" in v:
            raise ValueError(f"path must be s3://bucket/key or a local path, got {v[:80]!r}")
        return v


InputItem = str | S3Object


class DayInputs(_Model):
    """A per-day mapping ``{mission: item}`` (``oco3``, ``oco2``, ``oco3_sif``, ... any registered mission); a null
    value means the mission is absent that day."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, InputItem | None] = Field(init=False)  # the missions' items, validated

    @model_validator(mode="after")
    def _missions_only(self) -> DayInputs:
        unknown = [k for k in self.model_extra or {} if k not in MISSIONS]
        if unknown:
            raise ValueError(f"{str(unknown[0])[:40]}: unknown key (a day maps missions: {', '.join(MISSION_KEYS)})")
        return self

    def items(self) -> list[tuple[str, InputItem]]:
        """The missions present that day and their items, in registry order."""
        given = self.model_extra or {}
        return [(m, v) for m in MISSION_KEYS if (v := given.get(m)) is not None]


class QueueConfig(_Model):
    host: str
    port: int = Field(5672, ge=1, le=65535)
    username: str = "guest"
    password: SecretStr = SecretStr("guest")
    queue: str
    max_redeliveries: int = Field(3, ge=0, le=100, alias="max-redeliveries")

    @model_validator(mode="before")
    @classmethod
    def _host_port(cls, data: Any) -> Any:
        # The seed's sample writes ``host: rmq-host:5672``; split it when no port key is given.
        if isinstance(data, Mapping) and isinstance(data.get("host"), str) and ":" in data["host"]:
            host, _, port = data["host"].rpartition(":")
            if port.isdigit():
                data = {**data, "host": host}
                data.setdefault("port", int(port))
        return data


def _item_kind(value: Any) -> str:
    """Which input-item form a ``input.files`` entry is: a path, an S3 object, or a per-day mapping."""
    if isinstance(value, str):
        return "path"
    if isinstance(value, S3Object) or (isinstance(value, Mapping) and "path" in value):
        return "object"
    return "day"


FileItem = Annotated[
    Annotated[str, Tag("path")] | Annotated[S3Object, Tag("object")] | Annotated[DayInputs, Tag("day")],
    Discriminator(_item_kind),
]
_TAGS = {"path", "object", "day"}


class InputConfig(_Model):
    files: list[FileItem] | None = None
    queue: QueueConfig | None = None
    #: Copy each S3 object whole to a temporary file before reading it (default: read it in place, fetching only
    #: the metadata and chunks the product needs; see oco_l3.remote).
    staging: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> InputConfig:
        if (self.files is None) == (self.queue is None):
            raise ValueError("exactly one of input.files or input.queue is required")
        return self


class S3Output(_Model):
    url: str
    region: str = "us-west-2"
    endpoint: str | None = None
    auth: S3Auth = S3Auth()

    @field_validator("url")
    @classmethod
    def _s3_url(cls, v: str) -> str:
        if not v.startswith("s3://") or len(v) <= len("s3://"):
            raise ValueError(f"must be s3://bucket[/prefix], got {v[:80]!r}")
        return v


class OutputLocation(_Model):
    local: str | None = None
    s3: S3Output | None = None

    @field_validator("local")
    @classmethod
    def _local(cls, v: str | None) -> str | None:
        if v is None:
            return v
        path = v[len("file://"):] if v.startswith("file://") else v
        if not path or "\x00" in path:
            raise ValueError("must be a non-empty local path or file:// URL")
        return path

    @model_validator(mode="after")
    def _one_of(self) -> OutputLocation:
        if (self.local is None) == (self.s3 is None):
            raise ValueError("exactly one of local or s3 is required")
        return self


class CogConfig(_Model):
    output: OutputLocation
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)


class QfNames(_Model):
    pre_qf: str = "pre_qf"
    post_qf: str = "post_qf"

    @field_validator("pre_qf", "post_qf")
    @classmethod
    def _safe(cls, v: str) -> str:
        from oco_l3.targets import is_safe_id

        if not is_safe_id(v.removesuffix(".zarr")):
            raise ValueError(f"{v[:60]!r} is not a safe store name (letters, digits, _ - . + only)")
        return v


class OutputConfig(OutputLocation):
    global_: bool = Field(False, alias="global")
    naming: QfNames = QfNames()
    title: QfNames | None = None
    drop_empty: bool = Field(True, alias="drop-empty")
    cog: CogConfig | None = None
    format: StoreFormat = "zarr2"

    @property
    def zarr_format(self) -> int:
        """``output.format`` as the Zarr format number (2 or 3)."""
        return 3 if self.format == "zarr3" else 2


class GridConfig(_Model):
    latitude: int = Field(800, ge=1, le=MAX_CELLS_PER_SIDE)
    longitude: int = Field(800, ge=1, le=MAX_CELLS_PER_SIDE)
    method: Method = "cubic"


class ChunkingConfig(_Model):
    latitude: int = Field(DEFAULT_CHUNKING[0], ge=1, le=MAX_CELLS_PER_SIDE)
    longitude: int = Field(DEFAULT_CHUNKING[1], ge=1, le=MAX_CELLS_PER_SIDE)
    time: int = Field(DEFAULT_CHUNKING[2], ge=1, le=10_000)


class VariableRef(_Model):
    group: str = "/"
    name: str

    @property
    def key(self) -> str:
        g = self.group.strip("/")
        return f"{g}/{self.name}" if g else self.name


class TargetFiles(_Model):
    oco3: str | None = None
    oco2: str | None = None


class SearchConfig(_Model):
    source: Literal["cmr", "local", "s3"] = "cmr"
    local: str | None = None
    s3: str | None = None
    #: the products searched and waited for (default: the registry's default missions)
    missions: list[Mission] = Field(default_factory=lambda: list(DEFAULT_MISSIONS))


class StateConfig(_Model):
    url: str | None = None


class RunConfig(_Model):
    """The OCO products' run configuration (target-focused and global)."""

    product: Literal["oco"] = "oco"
    input: InputConfig | None = None
    output: OutputConfig
    grid: GridConfig = GridConfig()
    chunking: ChunkingConfig = ChunkingConfig()
    target_file: str | TargetFiles | None = Field(None, alias="target-file")
    exclude_groups: list[str] = Field(default_factory=list, alias="exclude-groups")
    drop_dims: list[VariableRef] = Field(default_factory=list, alias="drop-dims")
    variables: dict[Mission, list[VariableRef]] | None = None
    max_workers: int = Field(1, ge=1, le=64, alias="max-workers")
    mask_scaling: float = Field(1.0, ge=1.0, le=1.5, alias="mask-scaling")
    search: SearchConfig | None = None
    state: StateConfig | None = None
    gaps: str | None = None

    def target_path(self, mission: str) -> str | None:
        """The target file for ``mission``'s target list (OCO-3 and OCO-3 SIF: ``oco3``, the one path given as a
        string; OCO-2 and OCO-2 SIF: ``oco2``); ``None`` means the bundled one."""
        key = mission_spec(mission).target_list.key
        tf = self.target_file
        if tf is None or isinstance(tf, str):
            return tf if key == "oco3" else None
        return tf.oco2 if key == "oco2" else tf.oco3

    @property
    def title(self) -> QfNames:
        naming = self.output.naming
        return self.output.title or QfNames(
            pre_qf=naming.pre_qf.removesuffix(".zarr"), post_qf=naming.post_qf.removesuffix(".zarr")
        )


def _loc_part(part: Any) -> str:
    text = str(part)
    return text if text.replace("-", "_").replace("_", "a").isalnum() else repr(text[:40])


def _format_errors(err: ValidationError, source: str) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(
            _loc_part(p) for p in e["loc"]
            if not str(p).startswith(("function-", "union[")) and str(p) not in _TAGS and str(p) != "[key]"
        )
        msg = " ".join(e["msg"].removeprefix("Value error, ").split())
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{loc or '<root>'}: {msg}")
    unique = list(dict.fromkeys(parts))
    more = f" (+{len(unique) - 3} more)" if len(unique) > 3 else ""
    return f"{source}: invalid config: " + "; ".join(unique[:3]) + more


def parse_config(raw: Any, source: str = "<config>") -> RunConfig:
    """Validate decoded YAML as a :class:`RunConfig`; raises :class:`ConfigInvalid` naming the key."""
    if not isinstance(raw, Mapping):
        raise ConfigInvalid(f"{source}: a run config must be a YAML mapping, got {type(raw).__name__}")
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigInvalid(_format_errors(err, source)) from None


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file with the safe loader; errors become one-line :class:`ConfigInvalid`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigInvalid(f"{path}: cannot read config: {exc.__class__.__name__}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigInvalid(f"{path}: not valid YAML{where}") from None


def load_config(path: str | Path) -> Any:
    """Load a run config, dispatching on ``product:`` (default: the OCO products). The one config loader: the CLI,
    the flows' tasks, the queue listener and the ICESat-2 runs all load through it.

    Values that are exactly ``${NAME}`` come from the environment; every secret of the result is registered for
    log redaction (see :mod:`oco_l3.secrets`).
    """
    from oco_l3.secrets import register_model_secrets, resolve_env_refs

    raw = resolve_env_refs(read_yaml(path), str(path))
    config: Any
    product = raw.get("product", "oco") if isinstance(raw, Mapping) else "oco"
    if isinstance(product, str) and product.startswith("icesat2"):
        from oco_l3.icesat2.config import parse_icesat2_config

        config = parse_icesat2_config(raw, str(path))
    else:
        config = parse_config(raw, str(path))
    register_model_secrets(config)
    return config


#: The products an OCO run config makes; an ICESat-2 config makes the product its ``product:`` names.
OCO_TARGET = "oco-target"
OCO_GLOBAL = "oco-global"


def product_of(config: Any) -> str:
    """The product a run config makes -- the one place that decides it (the CLI, the config loader, the flows and
    the queue listener all ask): :data:`OCO_GLOBAL` with ``output.global: true``, else :data:`OCO_TARGET`, or the
    ICESat-2 product of an ICESat-2 config (``icesat2-seaice``, ...)."""
    product = str(getattr(config, "product", "oco"))
    if product != "oco":
        return product
    return OCO_GLOBAL if config.output.global_ else OCO_TARGET


def load_oco_config(path: str | Path) -> RunConfig:
    """:func:`load_config` for the commands that take only an OCO run config (the OCO flows, the queue listener);
    :class:`ConfigInvalid` naming the file for an ICESat-2 config."""
    config = load_config(path)
    if not isinstance(config, RunConfig):
        raise ConfigInvalid(f"{path}: an ICESat-2 product config ({product_of(config)}); this command takes an OCO "
                            "run config")
    return config


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
