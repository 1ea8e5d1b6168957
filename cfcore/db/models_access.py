"""Catalog tables of user management and four-eyes approvals (issue 4).

Secrets are never stored: passwords as Argon2 hashes, API tokens and sessions as SHA-256 of the
token (tokens are 256-bit random, so a plain hash is enough to make a stolen table useless).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, UTCDateTime


class User(Base):
    """A person who logs in. ``advisor_id`` is the PBX/agent id when the user is an advisor.

    ``failed_logins`` counts consecutive failures (for the audit; wrong passwords delay, they do
    not lock: ``cfcore.access.throttle``). ``locked_until`` is only cleared now (older versions
    set it; ``cf users unlock``).
    """

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(128))
    password_hash: Mapped[str | None] = mapped_column(Text)
    advisor_id: Mapped[str | None] = mapped_column(String(64), index=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(64))
    #: The web UI's language (``de``/``en``); None: taken from the browser's Accept-Language.
    language: Mapped[str | None] = mapped_column(String(8))

    roles: Mapped[list[UserRole]] = relationship(back_populates="user", cascade="all, delete-orphan",
                                                 order_by="UserRole.role", lazy="selectin")

    @property
    def role_names(self) -> frozenset[str]:
        return frozenset(r.role for r in self.roles)


class UserRole(Base):
    __tablename__ = "user_roles"
    __table_args__ = (UniqueConstraint("user_id", "role", name="uq_user_roles_user_role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The approval under which the role was granted (None for the bootstrap administrator).
    approval_id: Mapped[str | None] = mapped_column(String(32))
    user: Mapped[User] = relationship(back_populates="roles")


class ApiToken(Base):
    """An API token or a web session (``kind``), stored only as the SHA-256 of the token."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # token | session
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Approval(Base):
    """A four-eyes request and its life: requested → approved → executed, or rejected / expired.

    ``reviewer`` is the second person who decided (approved or rejected); ``approver`` is set only
    when the request was approved (the vote that completed it). Every vote is in
    ``approval_votes``.
    """

    __tablename__ = "approvals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_kind: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(128), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)
    approvals_required: Mapped[int] = mapped_column(Integer, default=1)
    requester_id: Mapped[str] = mapped_column(String(32), index=True)
    requester: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    requested_host: Mapped[str] = mapped_column(String(255))
    requested_ip: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    approver_id: Mapped[str | None] = mapped_column(String(32))
    approver: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reviewer_id: Mapped[str | None] = mapped_column(String(32))
    reviewer: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    review_note: Mapped[str | None] = mapped_column(Text)
    executed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    executed_by: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    votes: Mapped[list[ApprovalVote]] = relationship(back_populates="approval", cascade="all, delete-orphan",
                                                     order_by="ApprovalVote.id", lazy="selectin")


class ApprovalVote(Base):
    """One approving vote. Unique per person: the same second person approving twice counts once."""

    __tablename__ = "approval_votes"
    __table_args__ = (UniqueConstraint("approval_id", "user_id", name="uq_approval_votes_approval_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    approval_id: Mapped[str] = mapped_column(ForeignKey("approvals.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(32))
    username: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    host: Mapped[str] = mapped_column(String(255))
    ip: Mapped[str] = mapped_column(String(64))
    approval: Mapped[Approval] = relationship(back_populates="votes")


class PasswordReset(Base):
    """A password reset in two halves (split knowledge, issue 11 item 3).

    An administrator issues half A, a second person with an approving role (DPO, compliance)
    half B; the user needs both to set their own password, once, before ``expires_at``. Neither
    person alone holds a credential of the user. Only SHA-256 of each half is stored."""

    __tablename__ = "password_resets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    half_a_hash: Mapped[str] = mapped_column(String(64))
    half_a_by_id: Mapped[str] = mapped_column(String(32))
    half_a_by: Mapped[str] = mapped_column(String(64))
    half_b_hash: Mapped[str | None] = mapped_column(String(64))
    half_b_by_id: Mapped[str | None] = mapped_column(String(32))
    half_b_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)


class DeploymentFlag(Base):
    """A one-way switch of the deployment, e.g. ``bootstrap_closed``: once set, never cleared by
    CallFort itself (clearing it needs write access to the database, which the audit trail shows)."""

    __tablename__ = "deployment_flags"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())
    set_by: Mapped[str] = mapped_column(String(64))
