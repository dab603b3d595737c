"""Team memberships that follow a user's groups in the company directory or identity provider.

PORTUS_GROUP_TEAMS maps a group (an LDAP group DN, a value of the OpenID Connect groups claim) to
the teams its members belong to and with which role. At each sign-in through that source the
user's memberships from it are made to match their groups: missing teams are created, a hand-made
membership of a mapped team is taken over, the memberships of groups they left are removed.
A synced row is marked with its source, and no screen or command may change it by hand
(management.check_hand_edit): the directory is the one place to change it.

The setting is parsed once when the app starts: sign-ins pass `portus().group_teams` (core.py)
to `sync_group_teams`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flask_appbuilder.security.sqla.models import User
from sqlalchemy import select
from sqlalchemy.orm import Session, contains_eager

from portus_fab.access.management import create_team, parse_role
from portus_fab.errors import Invalid
from portus_fab.models import Role, Team, TeamMember

# group key (casefolded) -> {team name: role}
GroupTeams = Mapping[str, Mapping[str, Role]]


def group_key(group: str) -> str:
    """Groups compare without case (LDAP DNs do) and without the spaces a DN may have after its
    commas, so `CN=Devs, ou=groups` names the same group as `cn=devs,ou=groups`."""
    return ",".join(part.strip() for part in group.split(",")).casefold()


def parse_group_teams(value: Mapping[str, Any]) -> GroupTeams:
    """The setting, `{group: [team, role]}` or `{group: [[team, role], ...]}` for a group giving
    several teams. Raises ValueError on anything else (an unknown role too), so a typo stops the
    app instead of syncing nothing."""
    parsed: dict[str, dict[str, Role]] = {}
    for group, target in value.items():
        pairs = [target] if _is_pair(target) else target
        if not isinstance(group, str) or not isinstance(pairs, list | tuple):
            raise ValueError(f"PORTUS_GROUP_TEAMS[{group!r}]: expected [team, role]")
        teams = parsed.setdefault(group_key(group), {})
        for pair in pairs:
            if not _is_pair(pair):
                raise ValueError(f"PORTUS_GROUP_TEAMS[{group!r}]: {pair!r} is not [team, role]")
            team, role = pair
            try:
                teams[team] = _higher(teams.get(team), parse_role(role))
            except Invalid as error:
                raise ValueError(f"PORTUS_GROUP_TEAMS[{group!r}]: {error}") from None
    return parsed


def _is_pair(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(item, str) for item in value)
    )


def _higher(role: Role | None, other: Role) -> Role:
    return other if role is None or other.rank > role.rank else role


def wanted_teams(groups: Iterable[str], mapping: GroupTeams) -> dict[str, Role]:
    """{team: role} the groups give, the highest role where several give the same team."""
    wanted: dict[str, Role] = {}
    for group in groups:
        for team, role in mapping.get(group_key(group), {}).items():
            wanted[team] = _higher(wanted.get(team), role)
    return wanted


def sync_group_teams(
    session: Session, user: User, groups: Iterable[str], mapping: GroupTeams, source: str
) -> None:
    """Make the user's memberships from `source` those its groups give. Flushes; the entry
    point commits. Memberships from another source or by hand of unmapped teams stay as they are.
    """
    wanted = wanted_teams(groups, mapping)
    members = session.scalars(
        select(TeamMember)
        .join(Team)
        .options(contains_eager(TeamMember.team))  # their names, in this one query
        .where(TeamMember.user_id == user.id)
    ).all()
    held = {member.team.name: member for member in members}
    for name, member in held.items():
        if member.source == source and name not in wanted:
            session.delete(member)
    for name, role in wanted.items():
        member = held.get(name)
        if member is None:
            team = session.scalar(select(Team).where(Team.name == name))
            if team is None:
                team = create_team(session, name, f"Synced from the {source} group mapping.")
            session.add(TeamMember(team=team, user=user, role=role, source=source))
        elif (member.role, member.source) != (role, source):
            member.role, member.source = role, source
    session.flush()
