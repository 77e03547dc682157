//! The serial console's sessions on fake hosts ([`backend::fake`], whose guest echoes what it
//! is sent): access per account, one session at a time, and the end of a session when the
//! guest stops or moves.

mod fakes;

use std::time::{Duration, Instant};

use backend::fake::MigrationScript;
use backend::hypervisor::MigrationOptions;
use backend::{accounts::NewAccount, Backend, Error};

const ACCOUNT: &str = "123456789012";

fn account(b: &Backend, id: &str, name: &str) {
    b.create_account(NewAccount { name: name.into(), account_id: Some(id.into()), ..Default::default() }).unwrap();
}

fn wait_for_no_sessions(b: &Backend) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.serial_sessions_open() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(b.serial_sessions_open(), 0, "every ended session gives its place back");
}

#[test]
fn sessions_are_the_owners_one_at_a_time_and_end_with_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    let (b, cloud, id, hosts) = fakes::pair_with_instance(ACCOUNT, MigrationScript::Converges, dir.path());
    account(&b, ACCOUNT, "owner");
    account(&b, "210987654321", "other");

    // Off until the account turns it on.
    assert!(!b.serial_console_access(ACCOUNT).unwrap());
    assert!(matches!(b.open_serial_console(ACCOUNT, &id), Err(Error::SerialConsoleAccessDisabled)));
    assert!(b.set_serial_console_access(ACCOUNT, true).unwrap());
    // Another account, even with access on, meets an instance that does not exist.
    b.set_serial_console_access("210987654321", true).unwrap();
    assert!(matches!(b.open_serial_console("210987654321", &id), Err(Error::ResourceNotFound { .. })));

    let mut first = b.open_serial_console(ACCOUNT, &id).unwrap();
    first.to_guest.blocking_send(b"uname\r".to_vec()).unwrap();
    assert_eq!(first.from_guest.blocking_recv().unwrap(), b"uname\r");
    assert_eq!(b.serial_sessions_open(), 1);

    // A second session takes the console from the first.
    let mut second = b.open_serial_console(ACCOUNT, &id).unwrap();
    assert_eq!(first.from_guest.blocking_recv(), None);
    second.to_guest.blocking_send(b"x".to_vec()).unwrap();
    assert_eq!(second.from_guest.blocking_recv().unwrap(), b"x");

    // A live migration ends it at the switch-over; a new one opens on the new host.
    let migration = b.migrate_instance(&id, None, MigrationOptions::default()).unwrap();
    b.converge(&format!("{ACCOUNT}/{id}")).unwrap();
    assert_eq!(b.instance(ACCOUNT, &id).unwrap().host_id, hosts[1], "{migration:?}");
    assert_eq!(second.from_guest.blocking_recv(), None);
    let mut third = b.open_serial_console(ACCOUNT, &id).unwrap();

    // The caller leaving ends the session too.
    drop(third.to_guest);
    assert_eq!(third.from_guest.blocking_recv(), None);
    wait_for_no_sessions(&b);

    // The guest powers off: the session ends, and a stopped instance has no console.
    let fourth = b.open_serial_console(ACCOUNT, &id).unwrap();
    cloud.power_off("fake://two", &id);
    let mut fourth = fourth;
    assert_eq!(fourth.from_guest.blocking_recv(), None);
    wait_for_no_sessions(&b);
    b.stop_instances(ACCOUNT, std::slice::from_ref(&id), true).unwrap();
    b.converge(&format!("{ACCOUNT}/{id}")).unwrap();
    assert!(matches!(b.open_serial_console(ACCOUNT, &id), Err(Error::IncorrectInstanceState { .. })));

    // Turned off again: refused.
    assert!(!b.set_serial_console_access(ACCOUNT, false).unwrap());
    assert!(matches!(b.open_serial_console(ACCOUNT, &id), Err(Error::SerialConsoleAccessDisabled)));
}
