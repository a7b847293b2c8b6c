"""API tokens: a project's (owner) and the service's administrator tokens (administrator)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from ..deps import AdminDep, OwnerDep, ProjectId, SessionDep
from ..schemas import TokenCreate, TokenCreated, TokenOut
from ..services import tokens

router = APIRouter(tags=["tokens"])

TokenId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$", description="A token's id (not secret).")]


@router.get("/projects/{project_id}/tokens", response_model=list[TokenOut],
            summary="Every token of the project, never a secret (owner)")
def list_project_tokens(project_id: ProjectId, session: SessionDep, principal: OwnerDep
                        ) -> list[TokenOut]:
    return tokens.list_project_tokens(session, project_id)


@router.post("/projects/{project_id}/tokens", status_code=201, response_model=TokenCreated,
             summary="Make a reader token, or a new upload token, for one party (owner)")
def create_token(project_id: ProjectId, body: TokenCreate, session: SessionDep,
                 principal: OwnerDep) -> TokenCreated:
    """The token is shown only in this response; with ``expires_in_days`` it stops working
    then. To rotate a party's upload token, make a new one and revoke the old."""
    return tokens.create_project_token(session, principal, project_id, body)


@router.delete("/projects/{project_id}/tokens/{token_id}", response_model=TokenOut,
               summary="Revoke a token of the project (owner)")
def revoke_token(project_id: ProjectId, token_id: TokenId, session: SessionDep,
                 principal: OwnerDep) -> TokenOut:
    """A revoked token gets 401 from then on; the revocation is audited."""
    return tokens.revoke_project_token(session, principal, project_id, token_id)


@router.get("/admin/tokens", response_model=list[TokenOut],
            summary="Every administrator token, never a secret (administrator)")
def list_admin_tokens(session: SessionDep, principal: AdminDep) -> list[TokenOut]:
    return tokens.list_admin_tokens(session)


@router.delete("/admin/tokens/{token_id}", response_model=TokenOut,
               summary="Revoke an administrator token (administrator)")
def revoke_admin_token(token_id: TokenId, session: SessionDep, principal: AdminDep
                       ) -> TokenOut:
    return tokens.revoke_admin_token(session, principal.token_id, token_id)
