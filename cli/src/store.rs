//! Opening the store named by `--db`.

use std::sync::Arc;

use guiderail_runtime::store::{SqliteStore, Store};

use crate::Error;
use crate::args::Db;

/// Opens `db`: a `postgres://` (or `postgresql://`) URL opens the
/// PostgreSQL store, anything else is a SQLite file, which must exist
/// unless `create` (a typo must not leave an empty database behind).
/// `write`: the command writes runs (PostgreSQL's schema is then created
/// if missing; reading never changes it).
pub(crate) async fn open(db: &Db, create: bool, write: bool) -> Result<Arc<dyn Store>, Error> {
    let Db { db, schema } = db;
    if is_pg(db) {
        return open_pg(db, schema, write).await;
    }
    let path = db.strip_prefix("sqlite://").unwrap_or(db);
    let path = std::path::Path::new(path);
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(Error(format!("database `{db}` is not a file"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => {
            return Err(Error(format!(
                "database `{db}` does not exist (give the SQLite file a run was stored in, or a postgres:// URL)"
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error(format!("cannot open database `{db}`: {e}"))),
    }
    Ok(Arc::new(SqliteStore::open(path)?))
}

/// Brings the store's schema up to date (creating a SQLite file, or a
/// PostgreSQL schema, if missing) and says what it did.
pub(crate) async fn migrate(db: &Db) -> Result<String, Error> {
    if is_pg(&db.db) {
        return migrate_pg(db).await;
    }
    open(db, true, true).await?;
    Ok(format!("`{}` is up to date", db.db))
}

fn is_pg(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

#[cfg(feature = "postgres")]
async fn migrate_pg(db: &Db) -> Result<String, Error> {
    use guiderail_runtime::store::{PgOptions, PgStore};
    let options = PgOptions::new(&db.db)
        .schema(&db.schema)
        .max_connections(1)
        .application_name("guiderail-cli")
        .migrate_on_connect(false);
    let store = PgStore::connect_with(options).await?;
    let version = store.migrate().await?;
    Ok(format!(
        "schema `{}` on {} is at version {version}",
        db.schema,
        shown(&db.db)
    ))
}

#[cfg(not(feature = "postgres"))]
async fn migrate_pg(db: &Db) -> Result<String, Error> {
    open_pg(&db.db, &db.schema, true)
        .await
        .map(|_| String::new())
}

#[cfg(feature = "postgres")]
async fn open_pg(db: &str, schema: &str, write: bool) -> Result<Arc<dyn Store>, Error> {
    use guiderail_runtime::store::{PgOptions, PgStore};
    // Reading never changes the schema; an import may create it.
    let options = PgOptions::new(db)
        .schema(schema)
        .max_connections(2)
        .application_name("guiderail-cli")
        .migrate_on_connect(write);
    Ok(Arc::new(PgStore::connect_with(options).await?))
}

#[cfg(not(feature = "postgres"))]
async fn open_pg(db: &str, schema: &str, write: bool) -> Result<Arc<dyn Store>, Error> {
    let _ = (db, schema, write);
    Err(Error::from(
        "this `guiderail` was built without PostgreSQL support (feature `postgres` of guiderail-cli)",
    ))
}

/// `db` as it may be shown: a URL's password is left out.
pub(crate) fn shown(db: &str) -> String {
    let Some((scheme, rest)) = db.split_once("://") else {
        return db.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => db.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            super::shown("postgres://app:s3cret@db:5432/runs"),
            "postgres://app@db:5432/runs"
        );
        assert_eq!(super::shown("runs.db"), "runs.db");
    }
}
