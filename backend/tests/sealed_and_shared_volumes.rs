//! Encrypted and Multi-Attach volumes on two fake hosts ([`backend::fake`]), whose contract
//! says that a disk with a key opens only on a host that holds it: a boot, a hot-plug and a
//! live migration each lend the keys they need and take them back, every copy is re-keyed, and
//! the files on disk are LUKS inside qcow2 (or raw, for a volume several guests share). What
//! the guests write is checked on disk by the disk module's tests and, with real guests, by the
//! compat suite.

use std::sync::Arc;

use backend::accounts::NewAccount;
use backend::encryption::{managed_key_arn, EncryptionAsk};
use backend::fake::FakeCloud;
use backend::hosts::{Host, HostConfig, HostPool};
use backend::hypervisor::{Accelerator, AttachedDisk, DiskKey, Hypervisor, MigrationOptions};
use backend::instances::{LaunchRequest, RootVolumeRequest};
use backend::sharing::PermissionChange;
use backend::volumes::{LaunchVolume, NewVolume};
use backend::{Backend, Error, Topology};
use storage::{AttachmentState, MigrationStatus, SnapshotState, Store, VolumeState};

const OWNER: &str = "111111111111";
const OTHER: &str = "222222222222";
const HOSTS: [&str; 2] = ["fake://enc-one", "fake://enc-two"];
const KEY: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

/// Whether qemu-img reads the file as encrypted.
fn encrypted_on_disk(path: &str) -> bool {
    let out = std::process::Command::new("qemu-img").args(["info", "--output=json", "-U", path]).output().unwrap();
    assert!(out.status.success(), "{path}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["encrypted"] == true
}

struct Setup {
    b: Arc<Backend>,
    cloud: FakeCloud,
    zone: String,
    image: String,
    hosts: Vec<String>,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let configs: Vec<HostConfig> = HOSTS
        .iter()
        .map(|uri| {
            let mut config = HostConfig::new(uri);
            config.accelerator = Some(Accelerator::Test);
            config
        })
        .collect();
    let topology = Topology { hosts: configs.clone(), ..Topology::default() };
    let zone = topology.default_zone().to_owned();
    let pool = HostPool::new(configs.iter().map(|c| Host::new(c.clone(), zone.clone(), cloud.host(&c.uri))));
    let hosts = configs.iter().map(HostConfig::host_id).collect();
    let b = Arc::new(Backend::with_hosts(Store::in_memory().unwrap(), topology, pool).with_data_dir(dir.path()));
    for (id, name) in [(OWNER, "owner"), (OTHER, "other")] {
        b.create_account(NewAccount { name: name.into(), account_id: Some(id.into()), ..Default::default() }).unwrap();
    }
    let disk = dir.path().join("disk.qcow2");
    backend::disk::create_blank(&disk, None, 64 << 20).unwrap();
    let new =
        backend::images::NewImage { name: "img".into(), disk: disk.to_string_lossy().into(), ..Default::default() };
    let image = b.register_image(OWNER, new).unwrap().id;
    Setup { b, cloud, zone, image, hosts, _dir: dir }
}

fn held(s: &Setup) -> Vec<(Vec<String>, usize)> {
    HOSTS.iter().map(|uri| s.cloud.secrets(uri)).collect()
}

#[test]
fn keys_are_lent_for_a_boot_a_hot_plug_and_a_migration_and_taken_back() {
    let s = setup();
    let req = LaunchRequest {
        image_id: s.image.clone(),
        instance_type: "t3.nano".into(),
        min_count: 1,
        max_count: 1,
        root_volume: RootVolumeRequest { encrypted: Some(true), ..Default::default() },
        volumes: vec![LaunchVolume {
            device: "/dev/sdf".into(),
            size_gib: Some(1),
            encrypted: Some(true),
            kms_key_id: Some(KEY.into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let instance = s.b.run_instances(OWNER, "vpc-1", req).unwrap().remove(0);
    let key = format!("{OWNER}/{}", instance.id);
    s.b.converge(&key).unwrap();
    let volumes = s.b.instance_volumes(OWNER, &instance.id).unwrap();
    let root = volumes.iter().find(|v| v.root).unwrap();
    let data = volumes.iter().find(|v| !v.root).unwrap();
    let region = s.b.topology().region_of(&s.zone).to_owned();
    assert_eq!(root.encryption.as_ref().unwrap().kms_key_id, managed_key_arn(&region, OWNER));
    assert_eq!(data.encryption.as_ref().unwrap().kms_key_id, format!("arn:aws:kms:{region}:{OWNER}:key/{KEY}"));
    assert!(encrypted_on_disk(&root.path) && encrypted_on_disk(&data.path));
    let host = s.b.instance(OWNER, &instance.id).unwrap().host_id;
    let uri = HOSTS[s.hosts.iter().position(|h| *h == host).unwrap()];
    let domain = s.cloud.domain(uri, &instance.id).unwrap();
    assert_eq!(domain.spec.keys().len(), 2, "the domain names both keys");
    assert_eq!(held(&s).iter().map(|h| h.0.len()).sum::<usize>(), 0, "no host keeps a key after the boot");
    assert_eq!(s.cloud.secrets(uri).1, 2);

    // The contract: without its key a disk does not open.
    let stray = AttachedDisk {
        target: "vdz".into(),
        path: data.path.clone().into(),
        key: Some(DiskKey { secret_uuid: "00000000-0000-4000-8000-00000000beef".into(), passphrase: "x".into() }),
        shareable: false,
    };
    assert!(s.cloud.host(uri).attach_disk(&instance.id, &stray).is_err());

    // A hot-plugged encrypted volume, from CreateVolume.
    let ask = EncryptionAsk { encrypted: Some(true), kms_key_id: None };
    let volume =
        s.b.create_volume(
            OWNER,
            NewVolume { zone: s.zone.clone(), size_gib: Some(1), encryption: ask, ..Default::default() },
        )
        .unwrap();
    s.b.converge(&format!("{OWNER}/{}", volume.id)).unwrap();
    assert!(encrypted_on_disk(&volume.path));
    s.b.attach_volume(OWNER, &volume.id, &instance.id, "/dev/sdg").unwrap();
    s.b.converge(&key).unwrap();
    let plugged = s.cloud.domain(uri, &instance.id).unwrap().plugged;
    assert!(plugged["vdg"].key.is_some(), "{plugged:?}");
    assert_eq!(s.cloud.secrets(uri), (vec![], 3), "lent for the hot-plug, then taken back");

    // A live migration: the target holds the three keys while the guest arrives.
    let migration = s.b.migrate_instance(&instance.id, None, MigrationOptions::default()).unwrap();
    s.b.converge(&key).unwrap();
    let done = s.b.migrations().unwrap().into_iter().find(|m| m.id == migration.id).unwrap();
    assert_eq!(done.status, MigrationStatus::Completed, "{:?}", done.error);
    let target = HOSTS[s.hosts.iter().position(|h| *h == done.target_host).unwrap()];
    assert_eq!(s.cloud.secrets(target), (vec![], 3));

    // No image of an encrypted root: it would hold the data in the clear.
    let refused = s.b.create_image(OWNER, &instance.id, "copy", "", &[]).unwrap_err();
    assert!(matches!(refused, Error::UnsupportedOperation(_)), "{refused:?}");
}

#[test]
fn copies_are_rekeyed_and_sharing_follows_ec2s_rules() {
    let s = setup();
    let new = |encryption: EncryptionAsk, snapshot_id: Option<String>| NewVolume {
        zone: s.zone.clone(),
        size_gib: if snapshot_id.is_none() { Some(1) } else { None },
        snapshot_id,
        encryption,
        ..Default::default()
    };
    let made = |account: &str, req: NewVolume| {
        let volume = s.b.create_volume(account, req).unwrap();
        s.b.converge(&format!("{account}/{}", volume.id)).unwrap();
        s.b.volumes(account).unwrap().into_iter().find(|v| v.id == volume.id).unwrap()
    };
    let snapshot_of = |volume: &storage::VolumeRecord| {
        let snapshot = s.b.create_snapshot(OWNER, &volume.id, "", &[]).unwrap();
        s.b.converge(&format!("{OWNER}/{}", volume.id)).unwrap();
        let done = s.b.owned_snapshot(OWNER, &snapshot.id).unwrap();
        assert_eq!(done.state, SnapshotState::Completed, "{:?}", done.state_message);
        done
    };

    let plain = made(OWNER, new(EncryptionAsk::default(), None));
    assert!(plain.encryption.is_none() && !encrypted_on_disk(&plain.path));
    let sealed = made(OWNER, new(EncryptionAsk { encrypted: Some(true), kms_key_id: None }, None));
    let snapshot = snapshot_of(&sealed);
    let (v, n) = (sealed.encryption.as_ref().unwrap(), snapshot.encryption.as_ref().unwrap());
    assert_eq!(v.kms_key_id, n.kms_key_id);
    assert!(v.passphrase != n.passphrase && v.secret_uuid != n.secret_uuid, "a snapshot has a key of its own");
    assert!(encrypted_on_disk(&snapshot.path));

    // A volume from it is encrypted whatever the request says, under a third key.
    let restored =
        made(OWNER, new(EncryptionAsk { encrypted: Some(false), kms_key_id: None }, Some(snapshot.id.clone())));
    assert_eq!(restored.state, VolumeState::Available);
    let r = restored.encryption.as_ref().unwrap();
    assert!(r.passphrase != n.passphrase && r.kms_key_id == n.kms_key_id);
    assert!(encrypted_on_disk(&restored.path));

    // Under the AWS-managed key it is shared with nobody, and no encrypted snapshot is public.
    let share = |id: &str, change: PermissionChange| s.b.change_volume_permissions(OWNER, id, Some(&change));
    let with_other = PermissionChange { add: vec![OTHER.into()], ..Default::default() };
    let public = PermissionChange { add_all: true, ..Default::default() };
    assert!(matches!(share(&snapshot.id, with_other.clone()), Err(Error::OperationNotPermitted(_))));
    assert!(matches!(share(&snapshot.id, public.clone()), Err(Error::OperationNotPermitted(_))));

    // A copy under a key of the owner's choosing may be shared; it is re-encrypted.
    let region = s.b.topology().region_of(&s.zone).to_owned();
    let ask = EncryptionAsk { encrypted: Some(true), kms_key_id: Some(KEY.into()) };
    let copy = s.b.copy_snapshot(OWNER, &snapshot.id, "", &[], (&ask, &region)).unwrap();
    s.b.converge(&format!("{OWNER}/{}", copy.id)).unwrap();
    let copy = s.b.owned_snapshot(OWNER, &copy.id).unwrap();
    assert_eq!(copy.state, SnapshotState::Completed, "{:?}", copy.state_message);
    assert_ne!(copy.encryption.as_ref().unwrap().passphrase, n.passphrase);
    assert!(encrypted_on_disk(&copy.path));
    share(&copy.id, with_other).unwrap();
    assert!(matches!(share(&copy.id, public), Err(Error::OperationNotPermitted(_))));
    let theirs = made(OTHER, new(EncryptionAsk::default(), Some(copy.id.clone())));
    assert_eq!(theirs.state, VolumeState::Available);
    assert!(theirs.encryption.is_some() && encrypted_on_disk(&theirs.path));

    // A plain snapshot copied with Encrypted=true is sealed on the way.
    let plain_snapshot = snapshot_of(&plain);
    assert!(plain_snapshot.encryption.is_none());
    let ask = EncryptionAsk { encrypted: Some(true), kms_key_id: None };
    let sealed_copy = s.b.copy_snapshot(OWNER, &plain_snapshot.id, "", &[], (&ask, &region)).unwrap();
    s.b.converge(&format!("{OWNER}/{}", sealed_copy.id)).unwrap();
    let sealed_copy = s.b.owned_snapshot(OWNER, &sealed_copy.id).unwrap();
    assert_eq!(sealed_copy.state, SnapshotState::Completed);
    assert!(encrypted_on_disk(&sealed_copy.path) && !encrypted_on_disk(&plain_snapshot.path));

    // Encryption by default: every new volume, whatever it asks.
    s.b.set_ebs_encryption_by_default(OWNER, true).unwrap();
    let by_default = made(OWNER, new(EncryptionAsk { encrypted: Some(false), kms_key_id: None }, None));
    assert_eq!(by_default.encryption.as_ref().unwrap().kms_key_id, managed_key_arn(&region, OWNER));
    assert_eq!(
        s.b.set_ebs_default_kms_key(OWNER, &region, Some(KEY)).unwrap(),
        format!("arn:aws:kms:{region}:{OWNER}:key/{KEY}")
    );
    let chosen = made(OWNER, new(EncryptionAsk::default(), None));
    assert_eq!(chosen.encryption.as_ref().unwrap().kms_key_id, format!("arn:aws:kms:{region}:{OWNER}:key/{KEY}"));
    assert!(s.b.ebs_defaults(OTHER).unwrap() == Default::default(), "one account's setting is its own");
    let error = s.b.create_volume(OTHER, new(EncryptionAsk { encrypted: None, kms_key_id: Some(KEY.into()) }, None));
    assert!(matches!(error, Err(Error::ParameterDependency(_))), "{error:?}");
}

#[test]
fn a_multi_attach_volume_is_one_raw_file_shared_by_several_guests() {
    let s = setup();
    let launch = |n: u32| {
        let req = LaunchRequest {
            image_id: s.image.clone(),
            instance_type: "t3.nano".into(),
            min_count: n,
            max_count: n,
            ..Default::default()
        };
        let ids: Vec<String> = s.b.run_instances(OWNER, "vpc-1", req).unwrap().into_iter().map(|i| i.id).collect();
        for id in &ids {
            s.b.converge(&format!("{OWNER}/{id}")).unwrap();
        }
        ids
    };
    let ids = launch(2);
    let shared = |volume_type: &str, size: u64| NewVolume {
        zone: s.zone.clone(),
        size_gib: Some(size),
        volume_type: Some(volume_type.into()),
        iops: (volume_type != "gp3").then_some(100),
        multi_attach: true,
        encryption: EncryptionAsk { encrypted: Some(true), kms_key_id: None },
        ..Default::default()
    };
    let refused = s.b.create_volume(OWNER, shared("gp3", 4)).unwrap_err();
    assert!(matches!(refused, Error::ParameterCombination(_)), "{refused:?}");
    let volume = s.b.create_volume(OWNER, shared("io2", 4)).unwrap();
    s.b.converge(&format!("{OWNER}/{}", volume.id)).unwrap();
    assert!(volume.path.ends_with(".raw"), "{}", volume.path);
    let out = std::process::Command::new("qemu-img").args(["info", "--output=json", &volume.path]).output().unwrap();
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["format"], "luks", "raw with LUKS inside: {info}");

    for (id, device) in ids.iter().zip(["/dev/sdf", "/dev/sdg"]) {
        s.b.attach_volume(OWNER, &volume.id, id, device).unwrap();
    }
    let again = s.b.attach_volume(OWNER, &volume.id, &ids[0], "/dev/sdh").unwrap_err();
    assert!(matches!(again, Error::VolumeInUse(_)), "once per instance: {again:?}");
    for id in &ids {
        s.b.converge(&format!("{OWNER}/{id}")).unwrap();
    }
    let now = s.b.volumes(OWNER).unwrap().into_iter().find(|v| v.id == volume.id).unwrap();
    assert_eq!(
        now.attachments().map(|a| (a.instance_id.as_str(), a.state)).collect::<Vec<_>>(),
        [(ids[0].as_str(), AttachmentState::Attached), (ids[1].as_str(), AttachmentState::Attached)]
    );
    for (id, target) in ids.iter().zip(["vdf", "vdg"]) {
        let host = s.b.instance(OWNER, id).unwrap().host_id;
        let uri = HOSTS[s.hosts.iter().position(|h| *h == host).unwrap()];
        let plugged = &s.cloud.domain(uri, id).unwrap().plugged[target];
        assert!(plugged.shareable && plugged.key.is_some() && plugged.path.to_string_lossy() == now.path);
        assert_eq!(s.b.instance_volumes(OWNER, id).unwrap().len(), 2, "listed under each instance");
    }
    assert_eq!(held(&s).iter().map(|h| h.0.len()).sum::<usize>(), 0);
    let grown = backend::volumes::VolumeChange { size_gib: Some(8), ..Default::default() };
    assert!(matches!(s.b.modify_volume(OWNER, &volume.id, grown.clone()), Err(Error::UnsupportedOperation(_))));

    // Which attachment a detach means must be said once there are several.
    let unnamed = s.b.detach_volume(OWNER, &volume.id, None, None).unwrap_err();
    assert!(matches!(unnamed, Error::ParameterCombination(_)), "{unnamed:?}");
    s.b.detach_volume(OWNER, &volume.id, Some(&ids[0]), None).unwrap();
    s.b.converge(&format!("{OWNER}/{}", ids[0])).unwrap();
    let now = s.b.volumes(OWNER).unwrap().into_iter().find(|v| v.id == volume.id).unwrap();
    assert_eq!((now.state, now.attachments().count()), (VolumeState::InUse, 1));
    assert_eq!(now.attachment.as_ref().unwrap().instance_id, ids[1], "the other attachment is the first now");

    // The last instance's termination leaves it available (DeleteOnTermination is off).
    s.b.terminate_instances(OWNER, std::slice::from_ref(&ids[1])).unwrap();
    s.b.converge(&format!("{OWNER}/{}", ids[1])).unwrap();
    s.b.converge(&format!("{OWNER}/{}", ids[1])).unwrap();
    let now = s.b.volumes(OWNER).unwrap().into_iter().find(|v| v.id == volume.id).unwrap();
    assert_eq!((now.state, now.attachments().count()), (VolumeState::Available, 0));
    s.b.modify_volume(OWNER, &volume.id, grown).unwrap();
    s.b.converge(&format!("{OWNER}/{}", volume.id)).unwrap();
    let now = s.b.volumes(OWNER).unwrap().into_iter().find(|v| v.id == volume.id).unwrap();
    assert_eq!(now.size_gib, 8, "grown while detached: {:?}", now.modification);

    // Up to 16 instances at once.
    let many = launch(16);
    for id in &many {
        s.b.attach_volume(OWNER, &volume.id, id, "/dev/sdf").unwrap();
    }
    let extra = launch(1);
    let limit = s.b.attach_volume(OWNER, &volume.id, &extra[0], "/dev/sdf").unwrap_err();
    assert!(matches!(limit, Error::AttachmentLimitExceeded(_)), "{limit:?}");

    // All of them end together: each ending sees the others as they are, and the last leaves
    // the volume available (not in use with no attachment).
    for id in &many {
        s.b.converge(&format!("{OWNER}/{id}")).unwrap();
    }
    s.b.terminate_instances(OWNER, &many).unwrap();
    for _ in 0..2 {
        for id in &many {
            s.b.converge(&format!("{OWNER}/{id}")).unwrap();
        }
    }
    let now = s.b.volumes(OWNER).unwrap().into_iter().find(|v| v.id == volume.id).unwrap();
    assert_eq!((now.state, now.attachments().count()), (VolumeState::Available, 0));
    s.b.delete_volume(OWNER, &volume.id).unwrap();
    assert!(!std::path::Path::new(&now.path).exists());
}
