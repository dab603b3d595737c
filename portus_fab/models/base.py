"""The declarative base of portus_fab's tables, with a MetaData of their own (not FAB's).

On FAB's `Model.metadata` our tables would be created behind the migrations' back: FAB's security
manager runs `Model.metadata.create_all` at start-up whenever `ab_user`, `ab_group` or `ab_api_key`
is missing, and `flask fab create-db` runs it always. Either would create our tables as the models
stand now, with no version recorded, and the next migration would then fail or, worse, a database
would be taken for one made before migrations existed. On a MetaData of their own, only
portus_fab's migrations (portus_fab/migrations) ever create or change them.

A foreign key to one of FAB's tables names the column object (`ForeignKey(User.id)`): a string
such as "ab_user.id" is looked up in our MetaData, where FAB's tables are not.
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase


class Model(DeclarativeBase):
    metadata = MetaData()
