//! Applying the login throttle (`domain::throttle`) to the counters in the database, so every
//! replica counts the same failures.

use chrono::{DateTime, Utc};

use super::{Core, ServiceError};
use crate::domain::throttle::{Counter, Limits, retry_after_secs};
use crate::store::entities::login_throttle::Model as Row;
use crate::store::entities::user::Model as User;
use crate::store::throttle;

/// The keys a login attempt counts against.
pub struct Keys {
    account: String,
    address: Option<String>,
}

impl Keys {
    /// Unknown accounts are counted too, so the throttle reveals nothing about who exists.
    pub fn new(login: &str, address: Option<&str>) -> Self {
        Self {
            account: format!("a:{}", login.trim().to_lowercase()),
            address: address.map(|a| format!("i:{a}")),
        }
    }

    fn all(&self) -> Vec<String> {
        std::iter::once(self.account.clone())
            .chain(self.address.clone())
            .collect()
    }

    fn limits(&self, core: &Core, key: &str) -> Limits {
        if key == self.account {
            core.throttle.account
        } else {
            core.throttle.address
        }
    }
}

fn to_counter(row: &Row) -> Counter {
    Counter {
        failures: row.failures.unsigned_abs(),
        window_started_at: row.window_started_at,
        last_failure_at: row.last_failure_at,
        locked_until: row.locked_until,
        lock_level: row.lock_level.unsigned_abs(),
    }
}

fn to_row(key: String, c: Counter) -> Row {
    Row {
        key,
        failures: i32::try_from(c.failures).unwrap_or(i32::MAX),
        window_started_at: c.window_started_at,
        last_failure_at: c.last_failure_at,
        locked_until: c.locked_until,
        lock_level: i32::try_from(c.lock_level).unwrap_or(i32::MAX),
    }
}

/// What [`check`] saw: whether the account had a counter for a successful login to clear.
#[must_use]
pub struct Checked {
    account_counted: bool,
}

/// Refuses the attempt (429 with how long to wait) while either key must wait; otherwise
/// answers what it saw and the user `login` names, read with the counters (decision 86).
pub async fn check(
    core: &Core,
    keys: &Keys,
    login: &str,
    now: DateTime<Utc>,
) -> Result<(Checked, Option<User>), ServiceError> {
    let counted = if core.throttle.enabled {
        keys.all()
    } else {
        Vec::new()
    };
    let (rows, user) = throttle::find_with_user(&core.db, core.direct.as_ref(), &counted, login).await?;
    let account_counted = rows.iter().any(|row| row.key == keys.account);
    let wait = rows
        .iter()
        .filter_map(|row| {
            core.throttle
                .wait(&to_counter(row), keys.limits(core, &row.key), now)
        })
        .max();
    match wait {
        Some(wait) => Err(ServiceError::Throttled(retry_after_secs(wait))),
        None => Ok((Checked { account_counted }, user)),
    }
}

/// Counts a failed attempt against both keys.
pub async fn failed(core: &Core, keys: &Keys, now: DateTime<Utc>) -> Result<(), ServiceError> {
    if !core.throttle.enabled {
        return Ok(());
    }
    let rows = throttle::find(&core.db, &keys.all()).await?;
    let updated = keys
        .all()
        .into_iter()
        .map(|key| {
            let current = rows.iter().find(|r| r.key == key).map(to_counter);
            let next = core.throttle.fail(current.as_ref(), keys.limits(core, &key), now);
            to_row(key, next)
        })
        .collect();
    throttle::save(&core.db, updated).await?;
    Ok(())
}

/// A successful login clears the account's counter (not the address's: one good password
/// must not excuse a flood of guesses at other accounts). When [`check`] found no counter there
/// is nothing to clear and no statement is sent, as for nearly every login (decision 83): a
/// failure counted while this login was hashing is one the login never saw, and it stays.
pub async fn succeeded(core: &Core, keys: &Keys, checked: Checked) -> Result<(), ServiceError> {
    if checked.account_counted {
        throttle::clear(&core.db, &keys.account).await?;
    }
    Ok(())
}

/// Deletes counters nobody needs any more.
pub async fn prune(core: &Core) -> Result<u64, ServiceError> {
    Ok(throttle::prune(&core.db, core.clock.now() - core.throttle.window).await?)
}
