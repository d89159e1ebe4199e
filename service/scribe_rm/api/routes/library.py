"""The living library: reload it without a restart, and read the coverage gaps of live traffic."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from ...induction.gaps import cluster_gaps
from ...pipeline.engine import Engine
from ...pipeline.schemas import ErrorBody, GapSampleResponse, GapsResponse, LibraryVersions, ReloadResponse
from ..state import engine_of

router = APIRouter(tags=["library"])


@router.post("/admin/library/reload", response_model=ReloadResponse,
             responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}})
async def reload_library(engine: Engine = Depends(engine_of)) -> ReloadResponse:
    """Load the library directory again and swap it in without a restart (admin key). Requests in
    flight finish on the library they started with. An invalid library answers 422 naming the file and
    field, and the old one keeps serving."""
    return await engine.reload()


@router.get("/library/gaps", response_model=GapsResponse)
async def library_gaps(
    domain: str | None = Query(None, description="One domain's gaps ('none': texts sent without a domain); "
                                                 "default: all."),
    min_cluster_size: int = Query(3, ge=2),
    max_clusters: int = Query(12, ge=2, le=20),
    max_texts: int = Query(500, ge=2, le=2000, description="Cluster at most this many sampled texts (a random "
                                                           "subset)."),
    engine: Engine = Depends(engine_of),
) -> GapsResponse:
    """Routing texts from live traffic that no card fits well (fell back, or the best card led the
    runner-up by less than gap_margin), sampled per domain and clustered like induction clusters."""
    engine.require_ready()
    report = await cluster_gaps(engine.gaps, await engine.clustering_embedder(), domain, min_cluster_size,
                                max_clusters, max_texts)
    return GapsResponse(library_version=engine.library.version, sample_size=engine.gaps.size,
                        margin=engine.gaps.margin, **report)


@router.get("/library/versions", response_model=LibraryVersions)
async def library_versions(engine: Engine = Depends(engine_of)) -> LibraryVersions:
    """The current library version and the replaced ones still served to requests that pin them."""
    return engine.versions()


@router.get("/library/gaps/sample", response_model=GapSampleResponse)
async def library_gap_sample(
    domain: str | None = Query(None, description="One domain's sample ('none': texts sent without a domain); "
                                                 "default: all."),
    engine: Engine = Depends(engine_of),
) -> GapSampleResponse:
    """This replica's raw gap sample and how many gaps it has seen per domain: what a fleet-wide merge needs
    (`scribe-rm library induce --from-gaps` with several replicas)."""
    return GapSampleResponse(library_version=engine.library.version, seen=engine.gaps.seen(),
                             steps=[step.__dict__ for step in engine.gaps.steps(domain)])
