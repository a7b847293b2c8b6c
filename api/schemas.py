"""Request and response bodies of the service (what the OpenAPI docs show, with examples)."""

from __future__ import annotations

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from linker.backends import BACKENDS, available_backends
from linker.cohorts.representativeness import reference_problem
from linker.link import DEFAULT_DEDUP_THRESHOLD, DEFAULT_THRESHOLD
from linker.solver_names import DEFAULT_SOLVER, Solver

__all__ = ["ProjectCreate", "ProjectCreated", "ProjectOut", "TokenCreate", "TokenCreated",
           "TokenOut", "UploadOut", "RunCreate", "RunOut", "Page", "MatchOut", "MemberOut",
           "GroupOut", "PartyEntityOut", "AuditEventOut", "Health", "CohortQuery",
           "CohortRequestCreate", "CohortCatalog", "CohortDecision", "CohortRequestOut"]

_LABEL = r"^[a-z][a-z0-9_-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(BaseModel):
    status: Literal["ok", "no worker"] = Field(
        description="ok; or no worker (503): no worker process is alive to execute runs.")
    version: str
    workers_alive: int = Field(description="Worker processes that reported recently.")
    runs_queued: int
    runs_running: int
    oldest_lease_age_s: float | None = Field(
        description="Seconds since the least recently renewed lease of a running job was "
                    "renewed (above the lease time: its worker is gone and it will be "
                    "retried); null when nothing runs.")


Demographic = Literal["sex", "age_band", "race_ethnicity", "region"]
_DEMOGRAPHICS: tuple[Demographic, ...] = ("sex", "age_band", "race_ethnicity", "region")


class RiskPolicy(_Strict):
    """What a cohort export's entity table must meet before a researcher may download it
    (the release gate). Defaults: k >= 11 (the CMS cell-size rule), highest prosecutor risk
    at most 0.09 (El Emam's threshold for data released to researchers under an agreement),
    no Safe Harbor finding."""

    min_k: int = Field(11, ge=1, le=1_000_000, description="Smallest equivalence class.")
    max_risk: float = Field(0.09, gt=0.0, le=1.0,
                            description="Highest prosecutor risk (1 / smallest class).")
    safe_harbor: bool = Field(True, description="Hold an export with any Safe Harbor finding "
                                                "in its entity table.")
    quasi_identifiers: list[Demographic] = Field(
        default_factory=lambda: list(_DEMOGRAPHICS), min_length=1,
        description="The entity table's columns an attacker may know.")
    max_suppression: float = Field(0.05, ge=0.0, le=1.0, description=(
        "The suggested generalisation may suppress at most this share of the entities."))


class ProjectCreate(_Strict):
    name: str = Field(min_length=1, max_length=200, examples=["imaging-ehr-claims 2026"])
    schema_: str | dict[str, Any] = Field(
        alias="schema", examples=["person"],
        description="A shipped schema name (`pprl schemas`) or a linkage-schema v3 object.")
    parties: list[str] = Field(min_length=1, max_length=32,
                               examples=[["imaging", "ehr", "claims"]],
                               description="Party labels, lower case, unique.")
    dedup: bool = Field(False, description="Also find duplicates within each party.")
    min_cell: int = Field(11, ge=1, le=1000, description=(
        "Cohort counts below this are suppressed, with complementary suppression (11: the "
        "CMS cell-size rule)."))
    risk_policy: RiskPolicy = Field(default_factory=lambda: RiskPolicy.model_validate({}))

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ProjectOut(BaseModel):
    id: str
    name: str
    schema_fingerprint: str
    bloom_filter_bits: int
    parties: list[str]
    dedup: bool
    min_cell: int
    risk_policy: RiskPolicy
    created_at: float
    uploads: dict[str, int | None] = Field(
        description="Per party, the record count of its latest upload (null: none yet). An "
                    "upload or reader token sees its own party's only.")


class ProjectCreated(BaseModel):
    project: ProjectOut
    owner_token: str = Field(description="Shown once; stored only as a hash.")
    upload_tokens: dict[str, str] = Field(description="Per party; shown once.")


class TokenCreate(_Strict):
    role: Literal["reader", "upload", "researcher", "auditor", "owner"] = Field(
        "reader", description="reader: reads one party's results; upload: a new upload token "
                              "for a party (revoke the old one to rotate it); researcher: "
                              "counts and requests cohorts (no party); auditor: reads the "
                              "audit log and every request, read-only (no party); owner: "
                              "another owner token (no party), e.g. to rotate the owner "
                              "token: make one, then revoke the old one with it.")
    party: str | None = Field(None, pattern=_LABEL, examples=["ehr"],
                              description="The party (reader and upload tokens).")
    label: str = Field("", max_length=200, description="Who it is for (shown in listings).")
    expires_in_days: float | None = Field(None, gt=0, le=3650, examples=[30],
                                          description="None: never expires.")


class TokenCreated(BaseModel):
    token: str = Field(description="Shown once; stored only as a hash.")
    id: str
    role: str
    party: str | None
    expires_at: float | None


class TokenOut(BaseModel):
    """A token as listed: never its secret."""

    id: str
    role: str
    party: str | None
    label: str
    created_at: float
    last_used_at: float | None = Field(description="Updated at most once a minute.")
    expires_at: float | None
    revoked_at: float | None


class UploadOut(BaseModel):
    id: int
    party: str
    records: int
    size_bytes: int
    sha256: str
    source_format: str
    created_at: float
    key_check: str | None = Field(
        None, description="Key check value of the linkage secret the file was made with; "
                          "null for clkhash JSON, whose secret cannot be checked.")
    kind: Literal["encodings", "attributes"] = "encodings"
    columns: list[dict[str, str]] | None = Field(
        None, description="An attributes upload's declared columns (name, type, role).")


class CohortQuery(_Strict):
    run_id: int | None = Field(None, ge=1, le=2**31 - 1,
                               description="A finished linkage run; default: the latest.")
    definition: dict[str, Any] = Field(description="A cohort definition (README, Cohorts).")
    reference: dict[str, dict[str, float]] | None = Field(
        None, description="Shares (or counts, 0 or more) per dimension (sex, age_band, "
                          "race_ethnicity, region) and category to compare with; default: "
                          "every linked entity of the run, its small groups suppressed.")

    @field_validator("reference")
    @classmethod
    def _known_dimensions_and_shares(cls, value: dict[str, dict[str, float]] | None
                                     ) -> dict[str, dict[str, float]] | None:
        problem = None if value is None else reference_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class CohortRequestCreate(_Strict):
    run_id: int | None = Field(None, ge=1, le=2**31 - 1,
                               description="A finished linkage run; default: the latest.")
    definition: dict[str, Any]
    purpose: str = Field(min_length=10, max_length=4000,
                         description="What the cohort is for (the owner decides on it).")


class CohortCatalog(BaseModel):
    run_id: int | None = Field(description="The latest finished linkage run (what counts "
                                           "and requests use by default); null: none yet.")
    parties: dict[str, list[dict[str, str]]] = Field(
        description="Each party's attribute columns (name, type, role) from its latest "
                    "attributes upload: what a definition may use.")


class CohortDecision(_Strict):
    reason: str = Field("", max_length=4000)


class CohortRequestOut(BaseModel):
    id: str
    project_id: str
    run_id: int
    purpose: str
    definition: dict[str, Any]
    state: Literal["pending", "rejected", "exporting", "held", "ready", "failed"] = Field(
        description="held: exported, but its risk report does not meet the project's "
                    "policy; the owner generalises or rejects it.")
    reason: str | None
    entities: int | None = Field(description=(
        "Entities exported, once ready; held, only to the owner and auditors (the release "
        "gate may be withholding a small cohort's count)."))
    risk_report_id: int | None = Field(description="The export's latest risk report.")
    created_at: float
    decided_at: float | None


TokenRule = Literal["T1", "T2", "T3", "T4", "T5"]


class RunCreate(_Strict):
    threshold: Annotated[float, Field(gt=0.0, le=1.0)] | Literal["auto"] | None = Field(
        None, examples=[0.75, "auto"],
        description="Dice similarity a pair needs to be a candidate. `auto`: chosen from the "
                    "data when the run starts (the run's `threshold_choice`), without blocking "
                    "or tokens: for projects of several parties, by a fit that also "
                    "estimates precision and recall (of the pairs across parties where the "
                    "project deduplicates, each party's pairs within it then taking a "
                    "threshold of their own, `dedup_thresholds`: where its pair scores bottom "
                    "out); for a project of one party that deduplicates, where its pair scores "
                    "bottom out (no precision or recall estimate). Not given: as "
                    "`auto` where that applies and the data suffice, else the default "
                    f"{DEFAULT_THRESHOLD} "
                    f"({DEFAULT_DEDUP_THRESHOLD} when the project deduplicates), the run's "
                    "`threshold_choice` saying which and why.")
    dedup_thresholds: dict[str, Annotated[float, Field(gt=0.0, le=1.0)]] | None = Field(
        None, examples=[{"ehr": 0.76, "all": 0.78}],
        description="With `threshold` a number, in a project that deduplicates: party label "
                    "-> the threshold of pairs within that party (`all`: every party not "
                    "named), `threshold` then being that of pairs across parties. Given no "
                    "threshold such a project's are chosen from the data (the run's "
                    "`dedup_thresholds`); this repeats or adjusts them.")
    blocking: bool = Field(False, description="LSH blocking: faster on large inputs, may "
                                              "lose some matches.")
    backend: str = Field("cpu", examples=["cpu"], description=(
        "Where pairs are compared (same results): cpu, dask (the service's Dask cluster, "
        "PPRL_DASK_SCHEDULER) or gpu; refused when this installation lacks its package."))
    solver: Solver = Field(DEFAULT_SOLVER, description=(
        "cluster: two groups merge when the pairs across them score the threshold on average "
        "(keeps large duplicate groups); greedy: only when every pair across them is a "
        "candidate (anonlink's greedy solver). Two parties without deduplication: the same "
        "links either way."))
    tokens: list[TokenRule] = Field(
        default_factory=list, examples=[["T1", "T3"]],
        description="OpenToken rules: a pair agreeing on one of these tokens is a candidate "
                    "whatever its Dice score. Every party's upload must carry them "
                    "(`pprl tokenize --with-tokens`).")
    token_value_cap: int = Field(
        100, ge=0, description="With tokens: a token value held by more than this many "
                               "records of one party (a placeholder) makes no candidates; "
                               "0: no cap.")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, name: str) -> str:
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {name!r}: choose from {', '.join(BACKENDS)}")
        if name not in available_backends():
            raise ValueError(f"backend {name!r} is not installed on this service "
                             f"(pip install 'pprl-imaging[{name}]')")
        return name

    @field_validator("tokens")
    @classmethod
    def _each_once(cls, rules: list[str]) -> list[str]:
        return list(dict.fromkeys(rules))

    @model_validator(mode="after")
    def _within_beside_a_threshold(self) -> RunCreate:
        if self.dedup_thresholds and not isinstance(self.threshold, float):
            raise ValueError("dedup_thresholds need a threshold (a number) for the pairs "
                             "across parties")
        return self

    @model_validator(mode="after")
    def _auto_on_all_pairs(self) -> RunCreate:
        if self.threshold == "auto" and (self.blocking or self.tokens):
            raise ValueError("threshold 'auto' estimates an all-pairs Dice linkage: run it "
                             "without blocking and tokens (the estimate would describe "
                             "another run)")
        return self


class RunOut(BaseModel):
    id: int
    project_id: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    stage: str
    progress: float = Field(ge=0.0, le=1.0)
    threshold: float | None = Field(description=(
        "The run's threshold; null while a run asked for `auto`, or given none, has not "
        "chosen it yet."))
    dedup_thresholds: dict[str, float] | None = Field(None, description=(
        "Party -> the threshold of pairs within it, where a run of several parties that "
        "deduplicates has them (chosen from the data, or given); null: `threshold` for "
        "every pair."))
    threshold_choice: dict[str, Any] = Field(description=(
        "How the threshold was chosen: `method` given; estimated (with `reason`, "
        "`estimated_precision`, `estimated_recall` and what the recall is `recall_of`; for a "
        "deduplication `model` valley, the two estimates null and no `recall_of`; for several "
        "parties deduplicated `model` 'across parties and within each', the estimates of the "
        "pairs across parties and `within` each party's valley) or, for a run given none "
        "where no estimate applies, default (with `reason`) once the run has chosen it; "
        "`auto` or `unset` before."))
    blocking: bool
    backend: str = "cpu"
    solver: Solver
    tokens: list[str]
    token_value_cap: int
    attempt: int
    lease_expired: bool = Field(
        description="Running, but its worker has not renewed the lease in time: it stopped, "
                    "and the next worker will retry the run.")
    error: str | None
    stats: dict[str, Any] | None
    created_at: float
    started_at: float | None
    finished_at: float | None


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    total: int
    offset: int
    items: list[T]


class MatchOut(BaseModel):
    party_a: str
    record_a: str
    party_b: str
    record_b: str
    score: float


class MemberOut(BaseModel):
    party: str
    record_id: str


class GroupOut(BaseModel):
    entity: str
    members: list[MemberOut]


class PartyEntityOut(BaseModel):
    record_id: str
    entity: str = Field(description="Entity pseudonym, keyed per project.")


class AuditEventOut(BaseModel):
    id: int
    at: str = Field(description="ISO-8601 UTC, to the microsecond.")
    actor: str = Field(description="Token id, worker, or `anonymous`; never a token.")
    role: str
    action: str
    detail: dict[str, Any]
    prev_hash: str = Field(description="The hash of the event before this one in the "
                                       "project's chain (64 zeros for the first).")
    hash: str = Field(description="SHA-256 of prev_hash and this event's canonical text.")


class RiskReportOut(BaseModel):
    id: int
    request_id: str
    job_id: int
    created_at: str = Field(description="ISO-8601 UTC.")
    policy: RiskPolicy
    passed: bool
    reasons: list[str] = Field(description="Why the export is held (empty when passed).")
    report: dict[str, Any] = Field(description="The `pprl-risk-report/1` document of the "
                                               "export's entity table (see `pprl risk`).")


class AuditHeadOut(BaseModel):
    """The end of the project's chain: its length and last hash."""

    events: int
    last_hash: str
