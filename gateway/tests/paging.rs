//! Paging through Describe actions against a reference: across pages every matching resource
//! comes exactly once and in id order, whatever the page size and filters, while resources
//! are created and deleted between pages; tokens work only for the caller and the query they
//! were made for. The Describe actions that list through the shared path alone are walked by
//! `shared_path_pages_return_every_item_once_in_order_while_they_change`. Not walked here: the
//! instance-type catalogue and its offerings (paged by boto3's paginators in the clients'
//! tests), and DescribeHosts, DescribeDhcpOptions and DescribeInstanceMigrations, which page
//! the host pool, the account's one set and the migrations through the same `Describe` path.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use backend::fake::FakeCloud;
use backend::hosts::{Host, HostConfig, HostPool};
use backend::hypervisor::Accelerator;
use backend::{Backend, Topology};
use common::*;
use gateway::config::Limits;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn world() -> (Fixture, tempfile::TempDir) {
    world_on(storage::Store::in_memory().unwrap())
}

/// [`world`] on `store`.
fn world_on(store: storage::Store) -> (Fixture, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let mut config = HostConfig::new("fake://paging");
    config.accelerator = Some(Accelerator::Test);
    (config.vcpus, config.memory_mib) = (Some(4096), Some(1 << 22));
    let topology = Topology { hosts: vec![config.clone()], ..Topology::default() };
    let zone = topology.default_zone().to_owned();
    let pool = HostPool::new([Host::new(config, zone, cloud.host("fake://paging"))]);
    let backend = Backend::with_hosts(store, topology, pool).with_data_dir(dir.path());
    // No conductor: records stay as the requests left them, which is all a listing reads.
    (fixture_on(backend, Limits { requests_per_second: 100_000, burst: 100_000, ..Limits::default() }), dir)
}

fn all<'a>(body: &'a str, name: &str) -> Vec<&'a str> {
    body.split(&format!("<{name}>")).skip(1).filter_map(|rest| rest.split(&format!("</{name}>")).next()).collect()
}

async fn ok(f: &Fixture, body: &str) -> String {
    let (status, answer) = call(f, body).await;
    assert_eq!(status, 200, "{body}: {answer}");
    answer
}

/// Every page of `action` with `filter`, `page_size` a page: the `element` values, in order.
async fn walk(f: &Fixture, action: &str, page_size: usize, filter: &str, element: &str) -> Vec<String> {
    let (mut seen, mut token) = (Vec::<String>::new(), None::<String>);
    loop {
        let next = token.as_ref().map(|t| format!("&NextToken={t}")).unwrap_or_default();
        let answer = ok(f, &format!("Action={action}&Version=2016-11-15&MaxResults={page_size}{filter}{next}")).await;
        let mut page = all(&answer, element);
        // A route table's associations name it again, just after it: counted once.
        page.dedup();
        assert!(page.len() <= page_size, "{action}: {} > {page_size}", page.len());
        seen.extend(page.into_iter().map(str::to_owned));
        match all(&answer, "nextToken").first() {
            Some(t) => token = Some(t.to_string()),
            None => return seen,
        }
    }
}

/// What a walk listed (`seen`, in order), against listings of the whole before and after it
/// and what was made meanwhile: each item once, in id order; whatever was there throughout
/// listed; nothing listed that was in neither listing nor made.
fn assert_walk(
    what: &str,
    seen: &[String],
    before: &BTreeSet<String>,
    after: &BTreeSet<String>,
    made: &BTreeSet<String>,
) {
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "{what}: an item came twice: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{what}: not in id order: {seen:?}");
    for id in before.intersection(after) {
        assert!(unique.contains(id), "{what}: {id} was there throughout, not listed");
    }
    for id in seen {
        assert!(
            before.contains(id) || after.contains(id) || made.contains(id),
            "{what}: {id} was listed but matched neither before nor after, nor was made meanwhile"
        );
    }
}

/// An image the admin can launch.
fn image(f: &Fixture, dir: &std::path::Path) -> String {
    let disk = dir.join("disk.qcow2");
    backend::disk::create_blank(&disk, None, 64 << 20).unwrap();
    let new =
        backend::images::NewImage { name: "paging".into(), disk: disk.to_string_lossy().into(), ..Default::default() };
    let admin = f.state.backend.list_accounts().unwrap()[0].account_id.clone();
    f.state.backend.register_image(&admin, new).unwrap().id
}

const ENVS: [&str; 3] = ["prod", "dev", "test"];

async fn create_volume(f: &Fixture, rng: &mut StdRng) -> String {
    let env = ENVS[rng.gen_range(0..ENVS.len())];
    let body = format!(
        "Action=CreateVolume&Version=2016-11-15&AvailabilityZone=us-east-1a&Size={}&TagSpecification.1.ResourceType=volume&TagSpecification.1.Tag.1.Key=env&TagSpecification.1.Tag.1.Value={env}",
        rng.gen_range(1..4)
    );
    all(&ok(f, &body).await, "volumeId")[0].to_owned()
}

/// The filters a walk uses, as form parameters.
fn filters(rng: &mut StdRng, some_ids: &[String]) -> String {
    match rng.gen_range(0..6) {
        0 => String::new(),
        1 => format!("&Filter.1.Name=tag:env&Filter.1.Value.1={}", ENVS[rng.gen_range(0..3)]),
        2 => "&Filter.1.Name=tag:env&Filter.1.Value.1=prod&Filter.1.Value.2=test".into(),
        3 => format!("&Filter.1.Name=size&Filter.1.Value.1={}", rng.gen_range(1..4)),
        4 => "&Filter.1.Name=tag-value&Filter.1.Value.1=d*".into(),
        _ => {
            let mut body = "&Filter.1.Name=volume-id".to_owned();
            for (n, id) in some_ids.iter().enumerate() {
                body.push_str(&format!("&Filter.1.Value.{}={id}", n + 1));
            }
            body
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_pages_return_every_match_once_in_order_while_the_store_changes() {
    let (f, _dir) = world();
    let mut rng = StdRng::seed_from_u64(23);
    let mut live: BTreeSet<String> = BTreeSet::new();
    for _ in 0..60 {
        live.insert(create_volume(&f, &mut rng).await);
    }
    for walk in 0..24 {
        let ids: Vec<String> = live.iter().filter(|_| rng.gen_bool(0.2)).cloned().collect();
        let filter = filters(&mut rng, &ids);
        let reference = |body: String| all(&body, "volumeId").into_iter().map(str::to_owned).collect::<BTreeSet<_>>();
        let before = reference(ok(&f, &format!("Action=DescribeVolumes&Version=2016-11-15{filter}")).await);
        let page_size = rng.gen_range(5..=20);
        let (mut seen, mut token, mut pages) = (Vec::<String>::new(), None::<String>, 0);
        // Made during the walk: such a volume may be listed and deleted again before it ends.
        let mut created = BTreeSet::new();
        loop {
            let next = token.as_ref().map(|t| format!("&NextToken={t}")).unwrap_or_default();
            let body = format!("Action=DescribeVolumes&Version=2016-11-15&MaxResults={page_size}{filter}{next}");
            let answer = ok(&f, &body).await;
            let page = all(&answer, "volumeId");
            assert!(page.len() <= page_size, "walk {walk}: {} > {page_size}", page.len());
            seen.extend(page.iter().map(|s| s.to_string()));
            pages += 1;
            // Between pages: another volume, or one fewer.
            if rng.gen_bool(0.5) {
                let made = create_volume(&f, &mut rng).await;
                created.insert(made.clone());
                live.insert(made);
            } else if let Some(gone) = live.iter().nth(rng.gen_range(0..live.len())).cloned() {
                // Volumes are still `creating` here (no conductor runs): they go from the store
                // directly, as a crash between creation and the file's making would leave them.
                let account = f.state.backend.list_accounts().unwrap()[0].account_id.clone();
                let key = format!("{account}/{gone}");
                f.state.backend.store().write(|tx| tx.remove(&storage::tables::VOLUMES, &key)).unwrap();
                live.remove(&gone);
            }
            match all(&answer, "nextToken").first() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
            assert!(pages < 100, "walk {walk} does not end");
        }
        let after = reference(ok(&f, &format!("Action=DescribeVolumes&Version=2016-11-15{filter}")).await);
        assert_walk(&format!("walk {walk} ({filter}, {page_size} a page)"), &seen, &before, &after, &created);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_pages_are_whole_reservations_each_once() {
    let (f, dir) = world();
    let ami = image(&f, dir.path());
    let mut rng = StdRng::seed_from_u64(24);
    let mut reservations: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut envs: BTreeMap<String, &str> = BTreeMap::new();
    let (mut subnet, mut group) = (String::new(), String::new());
    for _ in 0..30 {
        let count = rng.gen_range(1..4);
        let env = ENVS[rng.gen_range(0..3)];
        let body = format!("Action=RunInstances&Version=2016-11-15&ImageId={ami}&InstanceType=t3.nano&MinCount={count}&MaxCount={count}&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=env&TagSpecification.1.Tag.1.Value={env}");
        let answer = ok(&f, &body).await;
        let reservation = all(&answer, "reservationId")[0].to_owned();
        envs.insert(reservation.clone(), env);
        reservations.insert(reservation, all(&answer, "instanceId").into_iter().map(str::to_owned).collect());
        (subnet, group) = (all(&answer, "subnetId")[0].to_owned(), all(&answer, "groupId")[0].to_owned());
    }
    // Every seventh reservation terminated (shutting down: no conductor here), so that the
    // state index holds two ranges that interleave.
    let ending: BTreeSet<&String> = reservations.keys().step_by(7).collect();
    for reservation in &ending {
        let ids: String = reservations[*reservation]
            .iter()
            .enumerate()
            .map(|(n, id)| format!("&InstanceId.{}={id}", n + 1))
            .collect();
        let answer = ok(&f, &format!("Action=TerminateInstances&Version=2016-11-15{ids}")).await;
        assert!(answer.contains("<name>shutting-down</name>"), "{answer}");
    }
    let two: Vec<&String> = reservations.keys().skip(3).step_by(11).take(2).collect();
    let by_reservation =
        format!("&Filter.1.Name=reservation-id&Filter.1.Value.1={}&Filter.1.Value.2={}", two[0], two[1]);
    let by_subnet = format!("&Filter.1.Name=subnet-id&Filter.1.Value.1={subnet}");
    let by_group = format!("&Filter.1.Name=instance.group-id&Filter.1.Value.1={group}");
    // (page size, filter, how many reservations it lists: None for those checked below)
    let all_of_them = Some(reservations.len());
    let pending = Some(reservations.len() - ending.len());
    for (page_size, filter, listed) in [
        (5, "", all_of_them),
        (7, "&Filter.1.Name=tag:env&Filter.1.Value.1=prod", None),
        (13, "&Filter.1.Name=instance-state-name&Filter.1.Value.1=pending", pending),
        // Two states: the state index's ranges merged over several batches, one of them empty.
        (6, "&Filter.1.Name=instance-state-name&Filter.1.Value.1=stopped&Filter.1.Value.2=pending", pending),
        (
            5,
            "&Filter.1.Name=instance-state-name&Filter.1.Value.1=shutting-down&Filter.1.Value.2=pending",
            all_of_them,
        ),
        (5, "&Filter.1.Name=instance-state-name&Filter.1.Value.1=shutting-down", Some(ending.len())),
        // A state no instance can be in.
        (5, "&Filter.1.Name=instance-state-name&Filter.1.Value.1=sleeping", Some(0)),
        // The attribute index: two types (one of them nobody's), two reservations, a key
        // nobody has; with a state filter beside it, tested on each record.
        (5, "&Filter.1.Name=instance-type&Filter.1.Value.1=t3.micro&Filter.1.Value.2=t3.nano", all_of_them),
        (5, by_reservation.as_str(), Some(2)),
        (5, by_subnet.as_str(), all_of_them),
        (7, by_group.as_str(), all_of_them),
        (5, "&Filter.1.Name=key-name&Filter.1.Value.1=nobody", Some(0)),
        (
            8,
            "&Filter.1.Name=availability-zone&Filter.1.Value.1=us-east-1a&Filter.2.Name=instance-state-name&Filter.2.Value.1=pending",
            pending,
        ),
    ] {
        let (mut seen, mut token) = (Vec::<String>::new(), None::<String>);
        loop {
            let next = token.as_ref().map(|t| format!("&NextToken={t}")).unwrap_or_default();
            let answer =
                ok(&f, &format!("Action=DescribeInstances&Version=2016-11-15&MaxResults={page_size}{filter}{next}"))
                    .await;
            assert!(all(&answer, "reservationId").len() <= page_size);
            // A reservation's instances come before its id; each comes whole (its instances
            // share their tag and state).
            let sections: Vec<&str> = answer.split("</reservationId>").collect();
            for section in &sections[..sections.len() - 1] {
                let (members, reservation) = section.rsplit_once("<reservationId>").unwrap();
                let ids: BTreeSet<String> = all(members, "instanceId").into_iter().map(str::to_owned).collect();
                assert_eq!(Some(&ids), reservations.get(reservation), "{reservation}");
                seen.push(reservation.to_owned());
            }
            match all(&answer, "nextToken").first() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "reservations in id order, each once");
        if let Some(listed) = listed {
            assert_eq!(seen.len(), listed, "{filter}");
        }
        if filter.contains("reservation-id") {
            assert_eq!(seen.iter().collect::<Vec<_>>(), two);
        }
    }

    // A tag most of an account's instances carry, beside the few-match tags above: its pages
    // read the index of instance tags by reservation as far as each page goes, and with two
    // values merge the values' walks over several batches (the bulk's 301 entries against
    // the few of `dev`).
    let mut bulk = BTreeSet::new();
    for _ in 0..3 {
        let body = format!("Action=RunInstances&Version=2016-11-15&ImageId={ami}&InstanceType=t3.nano&MinCount=100&MaxCount=100&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=env&TagSpecification.1.Tag.1.Value=bulk");
        bulk.insert(all(&ok(&f, &body).await, "reservationId")[0].to_owned());
    }
    // One more of them in a reservation of the few: a reservation lists its matching members.
    let body = format!("Action=RunInstances&Version=2016-11-15&ImageId={ami}&InstanceType=t3.nano&MinCount=2&MaxCount=2&TagSpecification.1.ResourceType=instance&TagSpecification.1.Tag.1.Key=env&TagSpecification.1.Tag.1.Value=prod");
    let answer = ok(&f, &body).await;
    let (mixed, members) = (all(&answer, "reservationId")[0].to_owned(), all(&answer, "instanceId"));
    ok(&f, &format!("Action=CreateTags&Version=2016-11-15&ResourceId.1={}&Tag.1.Key=env&Tag.1.Value=bulk", members[0]))
        .await;
    bulk.insert(mixed.clone());
    for values in ["&Filter.1.Value.1=bulk", "&Filter.1.Value.1=bulk&Filter.1.Value.2=dev"] {
        let filter = format!("&Filter.1.Name=tag:env{values}");
        let (mut seen, mut instances, mut token) = (Vec::<String>::new(), 0, None::<String>);
        loop {
            let next = token.as_ref().map(|t| format!("&NextToken={t}")).unwrap_or_default();
            let answer =
                ok(&f, &format!("Action=DescribeInstances&Version=2016-11-15&MaxResults=5{filter}{next}")).await;
            let sections: Vec<&str> = answer.split("</reservationId>").collect();
            for section in &sections[..sections.len() - 1] {
                let (listed, reservation) = section.rsplit_once("<reservationId>").unwrap();
                let ids = all(listed, "instanceId");
                if reservation == mixed {
                    assert_eq!(ids, [members[0]], "only the member that matches");
                }
                instances += ids.len();
                seen.push(reservation.to_owned());
            }
            match all(&answer, "nextToken").first() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{filter}: reservations in id order, each once");
        let mut expected: BTreeSet<&String> = bulk.iter().collect();
        let mut count = 301;
        if values.contains("dev") {
            for (reservation, _) in envs.iter().filter(|(_, env)| **env == "dev") {
                expected.insert(reservation);
                count += reservations[reservation].len();
            }
        }
        assert_eq!(seen.iter().collect::<BTreeSet<_>>(), expected, "{filter}");
        assert_eq!(instances, count, "{filter}");
    }
}

#[tokio::test]
async fn tokens_serve_only_their_caller_and_query() {
    let (f, _dir) = world();
    let mut rng = StdRng::seed_from_u64(25);
    for _ in 0..12 {
        create_volume(&f, &mut rng).await;
    }
    let first = ok(&f, "Action=DescribeVolumes&Version=2016-11-15&MaxResults=5").await;
    let token = all(&first, "nextToken")[0].to_owned();
    ok(&f, &format!("Action=DescribeVolumes&Version=2016-11-15&MaxResults=5&NextToken={token}")).await;

    let other =
        f.state.backend.create_account(backend::accounts::NewAccount { name: "other".into(), ..Default::default() });
    let other = other.unwrap();
    let as_other = signed_post(
        &format!("Action=DescribeVolumes&Version=2016-11-15&MaxResults=5&NextToken={token}"),
        &Signing::of(&other),
    );
    let refused = [
        send(&f, as_other).await,
        call(&f, &format!("Action=DescribeVolumes&Version=2016-11-15&MaxResults=5&NextToken={token}&Filter.1.Name=size&Filter.1.Value.1=1")).await,
        call(&f, &format!("Action=DescribeSnapshots&Version=2016-11-15&MaxResults=5&NextToken={token}")).await,
        call(&f, &format!("Action=DescribeVolumes&Version=2016-11-15&MaxResults=5&NextToken={}A", &token[..token.len() - 1])).await,
    ];
    for (status, answer) in refused {
        assert_eq!((status, code(&answer)), (400, "InvalidParameterValue"), "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_pages_by_resource_type_return_each_tag_once_in_order() {
    let (f, _dir) = world();
    let mut rng = StdRng::seed_from_u64(24);
    let mut volumes = BTreeSet::new();
    let mut groups = BTreeSet::new();
    for n in 0..40 {
        if n % 2 == 0 {
            volumes.insert(create_volume(&f, &mut rng).await);
        } else {
            let body = format!(
                "Action=CreateSecurityGroup&Version=2016-11-15&GroupName=g{n}&GroupDescription=d&TagSpecification.1.ResourceType=security-group&TagSpecification.1.Tag.1.Key=env&TagSpecification.1.Tag.1.Value=prod&TagSpecification.1.Tag.2.Key=team&TagSpecification.1.Tag.2.Value=t{n}"
            );
            groups.insert(all(&ok(&f, &body).await, "groupId")[0].to_owned());
        }
    }
    // (filter, the resources whose tags it lists, tags per resource)
    let cases: [(&str, Vec<&String>, usize); 5] = [
        ("&Filter.1.Name=resource-type&Filter.1.Value.1=volume", volumes.iter().collect(), 1),
        ("&Filter.1.Name=resource-type&Filter.1.Value.1=security-group", groups.iter().collect(), 2),
        (
            "&Filter.1.Name=resource-type&Filter.1.Value.1=security-group&Filter.1.Value.2=volume",
            volumes.iter().chain(&groups).collect(),
            0,
        ),
        ("&Filter.1.Name=resource-type&Filter.1.Value.1=image", vec![], 0),
        ("&Filter.1.Name=resource-type&Filter.1.Value.1=vol*", volumes.iter().collect(), 1),
    ];
    for (filter, resources, per) in cases {
        for page_size in [5, 7, 1000] {
            let (mut seen, mut token) = (Vec::<(String, String)>::new(), None::<String>);
            loop {
                let next = token.as_ref().map(|t| format!("&NextToken={t}")).unwrap_or_default();
                let answer =
                    ok(&f, &format!("Action=DescribeTags&Version=2016-11-15&MaxResults={page_size}{filter}{next}"))
                        .await;
                let ids = all(&answer, "resourceId");
                let keys = all(&answer, "key");
                assert!(ids.len() <= page_size && ids.len() == keys.len(), "{answer}");
                seen.extend(ids.iter().zip(&keys).map(|(i, k)| (i.to_string(), k.to_string())));
                match all(&answer, "nextToken").first() {
                    Some(t) => token = Some(t.to_string()),
                    None => break,
                }
            }
            let listed: BTreeSet<&String> = seen.iter().map(|(id, _)| id).collect();
            assert_eq!(listed, resources.iter().copied().collect(), "{filter}, {page_size} a page");
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "{filter}: each tag once, in order: {seen:?}");
            if per > 0 {
                assert_eq!(seen.len(), resources.len() * per, "{filter}: every tag of each resource");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface_pages_walk_the_interface_index_each_once_in_order() {
    let (f, dir) = world();
    let ami = image(&f, dir.path());
    let body =
        format!("Action=RunInstances&Version=2016-11-15&ImageId={ami}&InstanceType=t3.nano&MinCount=23&MaxCount=23");
    ok(&f, &body).await;
    let all_enis: BTreeSet<String> =
        all(&ok(&f, "Action=DescribeNetworkInterfaces&Version=2016-11-15").await, "networkInterfaceId")
            .into_iter()
            .map(str::to_owned)
            .collect();
    assert_eq!(all_enis.len(), 23);
    let some: Vec<&String> = all_enis.iter().step_by(3).collect();
    let mut by_id = String::from("&Filter.1.Name=network-interface-id");
    for (n, id) in some.iter().enumerate() {
        by_id.push_str(&format!("&Filter.1.Value.{}={id}", n + 1));
    }
    for (page_size, filter, expected) in [
        (5, String::new(), all_enis.iter().collect::<Vec<_>>()),
        (6, by_id, some.clone()),
        (1000, "&Filter.1.Name=status&Filter.1.Value.1=available".into(), vec![]),
    ] {
        let seen = walk(&f, "DescribeNetworkInterfaces", page_size, &filter, "networkInterfaceId").await;
        assert_eq!(seen.iter().collect::<Vec<_>>(), expected, "{filter}, {page_size} a page");
    }
    // A named interface of nothing is not found, as EC2 answers.
    let (status, answer) =
        call(&f, "Action=DescribeNetworkInterfaces&Version=2016-11-15&NetworkInterfaceId.1=eni-0123456789abcdef0")
            .await;
    assert_eq!((status, code(&answer)), (400, "InvalidNetworkInterfaceID.NotFound"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_pages_walk_the_rule_index_each_once_in_order() {
    let (f, _dir) = world();
    let mut groups = Vec::new();
    for n in 0..6 {
        let body = format!("Action=CreateSecurityGroup&Version=2016-11-15&GroupName=r{n}&GroupDescription=d");
        let group = all(&ok(&f, &body).await, "groupId")[0].to_owned();
        let mut authorize = format!("Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupId={group}");
        for port in 0..(n + 1) {
            let p = port + 1;
            authorize.push_str(&format!(
                "&IpPermissions.{p}.IpProtocol=tcp&IpPermissions.{p}.FromPort={}&IpPermissions.{p}.ToPort={}&IpPermissions.{p}.IpRanges.1.CidrIp=10.0.0.0/8",
                1000 + port,
                1000 + port
            ));
        }
        ok(&f, &authorize).await;
        groups.push(group);
    }
    let every: Vec<String> =
        all(&ok(&f, "Action=DescribeSecurityGroupRules&Version=2016-11-15").await, "securityGroupRuleId")
            .into_iter()
            .map(str::to_owned)
            .collect();
    // Each new group's egress rule, the default group's two, and 1+2+…+6 ingress rules.
    assert_eq!(every.len(), 6 + 2 + 21, "{every:?}");
    let mut sorted = every.clone();
    sorted.sort();
    assert_eq!(every, sorted, "in rule id order");
    for (page_size, filter, expected) in [
        (5, String::new(), every.len()),
        (7, format!("&Filter.1.Name=group-id&Filter.1.Value.1={}", groups[5]), 7),
        (1000, "&Filter.1.Name=group-id&Filter.1.Value.1=sg-0123456789abcdef0".into(), 0),
    ] {
        let seen = walk(&f, "DescribeSecurityGroupRules", page_size, &filter, "securityGroupRuleId").await;
        assert_eq!(seen.len(), expected, "{filter}, {page_size} a page: {seen:?}");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "each once, in order");
        assert!(seen.iter().all(|id| every.contains(id)));
    }
    let named = format!("Action=DescribeSecurityGroupRules&Version=2016-11-15&SecurityGroupRuleId.1={}", every[3]);
    assert_eq!(all(&ok(&f, &named).await, "securityGroupRuleId"), [every[3].as_str()]);
    let (status, answer) =
        call(&f, "Action=DescribeSecurityGroupRules&Version=2016-11-15&SecurityGroupRuleId.1=sgr-0123456789abcdef0")
            .await;
    assert_eq!((status, code(&answer)), (400, "InvalidSecurityGroupRuleId.NotFound"), "{answer}");
}

/// Ids of `element` in an answer, as owned strings.
fn ids(answer: &str, element: &str) -> Vec<String> {
    all(answer, element).into_iter().map(str::to_owned).collect()
}

/// On redb, and on PostgreSQL when the suite has one (`STRATUS_TEST_POSTGRES`): there a read
/// nested in a listing's is not in its snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vpc_resource_pages_walk_their_tables_each_once_in_order() {
    for (kind, store, _db) in storage::testing::stores() {
        eprintln!("on {kind}");
        vpc_resource_pages_on(store).await;
    }
}

async fn vpc_resource_pages_on(store: storage::Store) {
    let (f, dir) = world_on(store);
    // One instance in the default VPC: its subnet has one address fewer than the others.
    let ami = image(&f, dir.path());
    let run =
        format!("Action=RunInstances&Version=2016-11-15&ImageId={ami}&InstanceType=t3.nano&MinCount=1&MaxCount=1");
    let used_subnet = ids(&ok(&f, &run).await, "subnetId")[0].clone();
    // Twelve VPCs of three environments; the first three with four subnets and three route
    // tables each (besides their main one); an internet gateway for each VPC.
    let (mut vpcs, mut prod_vpcs, mut subnets, mut tables, mut gateways) =
        (Vec::new(), BTreeSet::new(), BTreeSet::new(), BTreeSet::new(), Vec::new());
    let (mut subnets_of, mut first_table) = (BTreeMap::<String, BTreeSet<String>>::new(), None);
    for n in 0..12 {
        let env = ENVS[n % 3];
        let body = format!(
            "Action=CreateVpc&Version=2016-11-15&CidrBlock=10.{n}.0.0/16&TagSpecification.1.ResourceType=vpc&TagSpecification.1.Tag.1.Key=env&TagSpecification.1.Tag.1.Value={env}"
        );
        let vpc = ids(&ok(&f, &body).await, "vpcId")[0].clone();
        if env == "prod" {
            prod_vpcs.insert(vpc.clone());
        }
        let gateway =
            ids(&ok(&f, "Action=CreateInternetGateway&Version=2016-11-15").await, "internetGatewayId")[0].clone();
        gateways.push(gateway);
        if n < 3 {
            for k in 0..4 {
                let body = format!("Action=CreateSubnet&Version=2016-11-15&VpcId={vpc}&CidrBlock=10.{n}.{k}.0/24");
                let subnet = ids(&ok(&f, &body).await, "subnetId")[0].clone();
                subnets_of.entry(vpc.clone()).or_default().insert(subnet.clone());
                subnets.insert(subnet);
            }
            for _ in 0..3 {
                let body = format!("Action=CreateRouteTable&Version=2016-11-15&VpcId={vpc}");
                let table = ids(&ok(&f, &body).await, "routeTableId")[0].clone();
                first_table.get_or_insert_with(|| table.clone());
                tables.insert(table);
            }
        }
        vpcs.push(vpc);
    }
    // A route to a gateway that then leaves its VPC: blackholed, which the record alone does
    // not say.
    let (vpc, gateway, table) = (&vpcs[0], &gateways[0], first_table.expect("a table of the first VPC"));
    ok(&f, &format!("Action=AttachInternetGateway&Version=2016-11-15&VpcId={vpc}&InternetGatewayId={gateway}")).await;
    let route = format!(
        "Action=CreateRoute&Version=2016-11-15&RouteTableId={table}&DestinationCidrBlock=0.0.0.0/0&GatewayId={gateway}"
    );
    ok(&f, &route).await;
    ok(&f, &format!("Action=DetachInternetGateway&Version=2016-11-15&VpcId={vpc}&InternetGatewayId={gateway}")).await;

    let default_vpc = ids(
        &ok(&f, "Action=DescribeVpcs&Version=2016-11-15&Filter.1.Name=is-default&Filter.1.Value.1=true").await,
        "vpcId",
    );
    assert_eq!(default_vpc.len(), 1, "the account's default VPC");
    let every_vpc: BTreeSet<String> = vpcs.iter().chain(&default_vpc).cloned().collect();
    let named: BTreeSet<String> = vpcs.iter().step_by(4).cloned().collect();
    let by_id = named
        .iter()
        .enumerate()
        .fold("&Filter.1.Name=vpc-id".to_owned(), |body, (n, id)| format!("{body}&Filter.1.Value.{}={id}", n + 1));
    let mine_only = |seen: Vec<String>, of: &BTreeSet<String>| seen.into_iter().filter(|s| of.contains(s)).collect();
    // Each VPC's network ACL, asked for by the VPC: one each, of that VPC, with its subnets.
    let mut acl_of = BTreeMap::new();
    for vpc in &every_vpc {
        let answer = ok(
            &f,
            &format!("Action=DescribeNetworkAcls&Version=2016-11-15&Filter.1.Name=vpc-id&Filter.1.Value.1={vpc}"),
        )
        .await;
        let mut acl = ids(&answer, "networkAclId");
        acl.dedup();
        assert_eq!((acl.len(), ids(&answer, "vpcId")), (1, vec![vpc.clone()]), "{answer}");
        let associated: BTreeSet<String> = ids(&answer, "subnetId").into_iter().collect();
        if let Some(own) = subnets_of.get(vpc) {
            assert_eq!(&associated, own, "the ACL's associations are its VPC's subnets");
        }
        acl_of.insert(vpc.clone(), acl[0].clone());
    }
    let acls_of = |of: &BTreeSet<String>| -> BTreeSet<String> { of.iter().map(|vpc| acl_of[vpc].clone()).collect() };
    let some_acls: BTreeSet<String> = acl_of.values().step_by(3).cloned().collect();
    let by_acl_id = some_acls.iter().enumerate().fold("&Filter.1.Name=network-acl-id".to_owned(), |body, (n, id)| {
        format!("{body}&Filter.1.Value.{}={id}", n + 1)
    });
    let of_second = subnets_of[&vpcs[1]].iter().next().expect("a subnet of the second VPC").clone();
    // Elastic IPs, which DescribeAddressesAttribute pages from their table.
    let (mut allocations, mut public) = (BTreeSet::new(), Vec::new());
    for _ in 0..9 {
        let answer = ok(&f, "Action=AllocateAddress&Version=2016-11-15&Domain=vpc").await;
        allocations.insert(ids(&answer, "allocationId")[0].clone());
        public.push((ids(&answer, "publicIp")[0].clone(), ids(&answer, "allocationId")[0].clone()));
    }
    // DescribeAddresses (not paged) by public address, or by allocation id: those alone.
    let by_address =
        format!("Action=DescribeAddresses&Version=2016-11-15&PublicIp.1={}&PublicIp.2={}", public[5].0, public[2].0);
    let shown = ids(&ok(&f, &by_address).await, "allocationId");
    assert_eq!(shown.into_iter().collect::<BTreeSet<_>>(), [public[2].1.clone(), public[5].1.clone()].into());
    let by_allocation = format!("Action=DescribeAddresses&Version=2016-11-15&AllocationId.1={}", public[7].1);
    assert_eq!(ids(&ok(&f, &by_allocation).await, "publicIp"), [public[7].0.clone()]);
    let cases: Vec<(&str, String, &str, BTreeSet<String>, bool)> = vec![
        ("DescribeAddressesAttribute", String::new(), "allocationId", allocations, true),
        ("DescribeNetworkAcls", String::new(), "networkAclId", acls_of(&every_vpc), true),
        ("DescribeNetworkAcls", by_id.clone(), "networkAclId", acls_of(&named), true),
        ("DescribeNetworkAcls", by_acl_id, "networkAclId", some_acls, true),
        (
            "DescribeNetworkAcls",
            format!("&Filter.1.Name=association.subnet-id&Filter.1.Value.1={of_second}"),
            "networkAclId",
            [acl_of[&vpcs[1]].clone()].into(),
            true,
        ),
        ("DescribeVpcs", String::new(), "vpcId", every_vpc.clone(), true),
        ("DescribeVpcs", "&Filter.1.Name=tag:env&Filter.1.Value.1=prod".into(), "vpcId", prod_vpcs.clone(), true),
        ("DescribeVpcs", by_id, "vpcId", named.clone(), true),
        (
            "DescribeVpcs",
            "&Filter.1.Name=cidr&Filter.1.Value.1=10.1*".into(),
            "vpcId",
            [vpcs[1].clone(), vpcs[10].clone(), vpcs[11].clone()].into(),
            true,
        ),
        // The default VPC's subnets are there too: the walk must hold every one of these.
        ("DescribeSubnets", String::new(), "subnetId", subnets.clone(), false),
        (
            "DescribeSubnets",
            format!("&Filter.1.Name=vpc-id&Filter.1.Value.1={}", vpcs[1]),
            "subnetId",
            subnets_of[&vpcs[1]].clone(),
            true,
        ),
        // Free addresses are computed, not stored: a /24 has 251, a default /20 4,091, less
        // what its instances hold.
        (
            "DescribeSubnets",
            "&Filter.1.Name=available-ip-address-count&Filter.1.Value.1=251".into(),
            "subnetId",
            subnets.clone(),
            true,
        ),
        (
            "DescribeSubnets",
            "&Filter.1.Name=available-ip-address-count&Filter.1.Value.1=4090".into(),
            "subnetId",
            [used_subnet.clone()].into(),
            true,
        ),
        ("DescribeRouteTables", String::new(), "routeTableId", tables.clone(), false),
        (
            "DescribeRouteTables",
            "&Filter.1.Name=route.state&Filter.1.Value.1=blackhole".into(),
            "routeTableId",
            [table.clone()].into(),
            true,
        ),
        ("DescribeInternetGateways", String::new(), "internetGatewayId", gateways.iter().cloned().collect(), false),
        (
            "DescribeInternetGateways",
            format!("&Filter.1.Name=attachment.vpc-id&Filter.1.Value.1={}", vpcs[0]),
            "internetGatewayId",
            BTreeSet::new(),
            true,
        ),
    ];
    for (action, filter, element, expected, exact) in cases {
        // 100 is the most a page of route tables may hold.
        for page_size in [5, 7, 100] {
            let seen = walk(&f, action, page_size, &filter, element).await;
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "{action}{filter}: each once, in id order: {seen:?}");
            let listed: BTreeSet<String> =
                if exact { seen.iter().cloned().collect() } else { mine_only(seen, &expected) };
            assert_eq!(listed, expected, "{action}{filter}, {page_size} a page");
        }
    }
    // Ids of nothing are not found, as EC2 answers.
    for (action, param, id, code_) in [
        ("DescribeVpcs", "VpcId", "vpc-0123456789abcdef0", "InvalidVpcID.NotFound"),
        ("DescribeSubnets", "SubnetId", "subnet-0123456789abcdef0", "InvalidSubnetID.NotFound"),
        ("DescribeRouteTables", "RouteTableId", "rtb-0123456789abcdef0", "InvalidRouteTableID.NotFound"),
        ("DescribeInternetGateways", "InternetGatewayId", "igw-0123456789abcdef0", "InvalidInternetGatewayID.NotFound"),
        ("DescribeNetworkAcls", "NetworkAclId", "acl-0123456789abcdef0", "InvalidNetworkAclID.NotFound"),
        ("DescribeAddressesAttribute", "AllocationId", "eipalloc-0123456789abcdef0", "InvalidAllocationID.NotFound"),
    ] {
        let (status, answer) = call(&f, &format!("Action={action}&Version=2016-11-15&{param}.1={id}")).await;
        assert_eq!((status, code(&answer)), (400, code_), "{answer}");
    }
}

/// What the model-based walks below make, page through and delete between pages.
#[derive(Clone, Copy, Debug)]
enum Kind {
    SecurityGroup,
    Vpc,
    Subnet,
    RouteTable,
    InternetGateway,
    LaunchTemplate,
}

/// How a walk drives one [`Kind`].
struct Parts {
    describe: &'static str,
    /// The element holding an item's id.
    element: &'static str,
    id_filter: &'static str,
    /// The Create action and its parameters.
    create: String,
    /// The Delete action and its id parameter's name.
    delete: &'static str,
    /// The resource type its tags are specified for.
    resource_type: &'static str,
}

impl Kind {
    /// The `n`-th resource made of this kind (subnets and route tables in `vpc`).
    fn parts(self, n: usize, vpc: &str) -> Parts {
        let (describe, element, id_filter, create, delete, resource_type) = match self {
            Kind::SecurityGroup => (
                "DescribeSecurityGroups",
                "groupId",
                "group-id",
                format!("CreateSecurityGroup&GroupName=g{n}&GroupDescription=d"),
                "DeleteSecurityGroup&GroupId",
                "security-group",
            ),
            Kind::Vpc => (
                "DescribeVpcs",
                "vpcId",
                "vpc-id",
                format!("CreateVpc&CidrBlock=10.{}.0.0/16", n % 250),
                "DeleteVpc&VpcId",
                "vpc",
            ),
            Kind::Subnet => (
                "DescribeSubnets",
                "subnetId",
                "subnet-id",
                format!("CreateSubnet&VpcId={vpc}&CidrBlock=10.0.{n}.0/24"),
                "DeleteSubnet&SubnetId",
                "subnet",
            ),
            Kind::RouteTable => (
                "DescribeRouteTables",
                "routeTableId",
                "route-table-id",
                format!("CreateRouteTable&VpcId={vpc}"),
                "DeleteRouteTable&RouteTableId",
                "route-table",
            ),
            Kind::InternetGateway => (
                "DescribeInternetGateways",
                "internetGatewayId",
                "internet-gateway-id",
                "CreateInternetGateway".into(),
                "DeleteInternetGateway&InternetGatewayId",
                "internet-gateway",
            ),
            Kind::LaunchTemplate => (
                "DescribeLaunchTemplates",
                "launchTemplateId",
                "launch-template-id",
                format!("CreateLaunchTemplate&LaunchTemplateName=lt{n}&LaunchTemplateData.InstanceType=t3.nano"),
                "DeleteLaunchTemplate&LaunchTemplateId",
                "launch-template",
            ),
        };
        Parts { describe, element, id_filter, create, delete, resource_type }
    }
}

/// Whether a resource (its id, its `env` tag) matches a walk's filter.
type Matches = Box<dyn Fn(&str, &str) -> bool>;

/// Every paginated Describe of what an account makes itself, walked against a model of what
/// it made: across pages each resource comes once and in id order, whatever the page size and
/// the filter (none, an exact tag, two tag values, a tag pattern no index serves, some ids),
/// while resources are made and deleted between pages; whatever was there throughout and
/// matches is listed; nothing is listed that never matched; a token serves its own query only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_describe_pages_its_own_resources_once_in_order_while_they_change() {
    for (kind, store, _db) in storage::testing::stores() {
        eprintln!("on {kind}");
        own_resources_walk_on(store).await;
    }
}

async fn own_resources_walk_on(store: storage::Store) {
    let (f, _dir) = world_on(store);
    let mut rng = StdRng::seed_from_u64(26);
    let vpc = ids(&ok(&f, "Action=CreateVpc&Version=2016-11-15&CidrBlock=10.0.0.0/16").await, "vpcId")[0].clone();
    let mut made = 0usize;
    for kind in
        [Kind::SecurityGroup, Kind::Vpc, Kind::Subnet, Kind::RouteTable, Kind::InternetGateway, Kind::LaunchTemplate]
    {
        let Parts { describe: action, element, id_filter, delete, .. } = kind.parts(0, &vpc);
        // The model: each resource made and its environment tag.
        let mut live: BTreeMap<String, &str> = BTreeMap::new();
        let mut ever: BTreeMap<String, &str> = BTreeMap::new();
        let make = |n: usize, env: &'static str| {
            let Parts { element, create, resource_type, .. } = kind.parts(n, &vpc);
            let body = format!(
                "Action={create}&Version=2016-11-15&TagSpecification.1.ResourceType={resource_type}&TagSpecification.1.Tag.1.Key=env&TagSpecification.1.Tag.1.Value={env}"
            );
            let f = &f;
            async move { ids(&ok(f, &body).await, element)[0].clone() }
        };
        for _ in 0..20 {
            let env = ENVS[rng.gen_range(0..3)];
            made += 1;
            let id = make(made, env).await;
            live.insert(id.clone(), env);
            ever.insert(id, env);
        }
        for walk in 0..8 {
            let some: BTreeSet<String> = live.keys().filter(|_| rng.gen_bool(0.3)).cloned().collect();
            let env = ENVS[rng.gen_range(0..3)];
            let (filter, matches): (String, Matches) = match rng.gen_range(0..5) {
                0 => (String::new(), Box::new(|_, _| true)),
                1 => (format!("&Filter.1.Name=tag:env&Filter.1.Value.1={env}"), Box::new(move |_, e| e == env)),
                2 => (
                    "&Filter.1.Name=tag:env&Filter.1.Value.1=prod&Filter.1.Value.2=test".into(),
                    Box::new(|_, e| e != "dev"),
                ),
                3 => ("&Filter.1.Name=tag-value&Filter.1.Value.1=d*".into(), Box::new(|_, e| e == "dev")),
                _ => {
                    let values: String =
                        some.iter().enumerate().map(|(n, id)| format!("&Filter.1.Value.{}={id}", n + 1)).collect();
                    let some = some.clone();
                    (format!("&Filter.1.Name={id_filter}{values}"), Box::new(move |id, _| some.contains(id)))
                }
            };
            if filter.ends_with(id_filter) {
                continue; // No ids drawn: a filter without values is refused, as EC2 refuses it.
            }
            let before = live.clone();
            let page_size = rng.gen_range(5..=12);
            let (mut seen, mut token, mut pages) = (Vec::<String>::new(), None::<String>, 0);
            loop {
                let next = token.as_ref().map(|t| format!("&NextToken={t}")).unwrap_or_default();
                let body = format!("Action={action}&Version=2016-11-15&MaxResults={page_size}{filter}{next}");
                let answer = ok(&f, &body).await;
                let mut page = all(&answer, element);
                page.dedup(); // a route table's associations name it again
                assert!(page.len() <= page_size, "{action} walk {walk}: {} > {page_size}", page.len());
                seen.extend(page.iter().map(|s| s.to_string()));
                pages += 1;
                if let (Some(t), 1) = (all(&answer, "nextToken").first(), pages) {
                    // The first page's token, with another filter: refused.
                    let other = format!("Action={action}&Version=2016-11-15&MaxResults={page_size}&Filter.1.Name=tag:other&Filter.1.Value.1=x&NextToken={t}");
                    let (status, refused) = call(&f, &other).await;
                    assert_eq!((status, code(&refused)), (400, "InvalidParameterValue"), "{action}: {refused}");
                }
                // Between pages: one more, or one fewer.
                if rng.gen_bool(0.5) {
                    let env = ENVS[rng.gen_range(0..3)];
                    made += 1;
                    let id = make(made, env).await;
                    live.insert(id.clone(), env);
                    ever.insert(id, env);
                } else if let Some(gone) = live.keys().nth(rng.gen_range(0..live.len())).cloned() {
                    ok(&f, &format!("Action={delete}={gone}&Version=2016-11-15")).await;
                    live.remove(&gone);
                }
                match all(&answer, "nextToken").first() {
                    Some(t) => token = Some(t.to_string()),
                    None => break,
                }
                assert!(pages < 100, "{action} walk {walk} does not end");
            }
            let what = format!("{action} walk {walk} ({filter}, {page_size} a page)");
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "{what}: each once, in id order: {seen:?}");
            for (id, env) in &before {
                if live.contains_key(id) && matches(id, env) {
                    assert!(seen.contains(id), "{what}: {id} was there throughout and matches, not listed");
                }
            }
            for id in &seen {
                match ever.get(id) {
                    Some(env) => assert!(matches(id, env), "{what}: {id} listed, does not match"),
                    // What the account was given (its default VPC's, say) has no tags.
                    None => assert!(filter.is_empty(), "{what}: {id} listed, made by nobody here"),
                }
            }
        }
    }
    assert!(made < 256, "subnets are 10.0.n.0/24");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_template_version_pages_walk_the_version_table_in_order() {
    for (kind, store, _db) in storage::testing::stores() {
        eprintln!("on {kind}");
        template_versions_on(store).await;
    }
}

async fn template_versions_on(store: storage::Store) {
    let (f, _dir) = world_on(store);
    // Three templates; the second with twelve versions of alternating types, its default the
    // fourth.
    let mut templates = Vec::new();
    for n in 0..3 {
        let body = format!(
            "Action=CreateLaunchTemplate&Version=2016-11-15&LaunchTemplateName=versions{n}&LaunchTemplateData.InstanceType=t3.nano"
        );
        templates.push(ids(&ok(&f, &body).await, "launchTemplateId")[0].clone());
    }
    let many = templates[1].clone();
    for n in 2..=12 {
        let kind = if n % 2 == 0 { "t3.micro" } else { "t3.nano" };
        let body = format!(
            "Action=CreateLaunchTemplateVersion&Version=2016-11-15&LaunchTemplateId={many}&LaunchTemplateData.InstanceType={kind}"
        );
        ok(&f, &body).await;
    }
    ok(&f, &format!("Action=ModifyLaunchTemplate&Version=2016-11-15&LaunchTemplateId={many}&SetDefaultVersion=4"))
        .await;
    templates.sort();

    // Every page of `query`, `size` a page: (template, version) in order. Between the pages,
    // `between` may change the store.
    async fn pages(f: &Fixture, query: &str, size: usize, between: Option<&str>) -> Vec<(String, u64)> {
        let (mut seen, mut token, mut first) = (Vec::new(), None::<String>, true);
        loop {
            let next = token.as_ref().map(|t| format!("&NextToken={t}")).unwrap_or_default();
            let body =
                format!("Action=DescribeLaunchTemplateVersions&Version=2016-11-15&MaxResults={size}{query}{next}");
            let answer = ok(f, &body).await;
            let (templates, numbers) = (all(&answer, "launchTemplateId"), all(&answer, "versionNumber"));
            assert_eq!(templates.len(), numbers.len(), "{answer}");
            assert!(numbers.len() <= size, "{answer}");
            seen.extend(templates.iter().zip(&numbers).map(|(t, n)| (t.to_string(), n.parse().unwrap())));
            if let Some(change) = between.filter(|_| first) {
                ok(f, change).await;
                first = false;
            }
            match all(&answer, "nextToken").first() {
                Some(t) => token = Some(t.to_string()),
                None => return seen,
            }
        }
    }
    let of_many = |numbers: &[u64]| -> Vec<(String, u64)> { numbers.iter().map(|n| (many.clone(), *n)).collect() };
    let one = format!("&LaunchTemplateId={many}");
    for size in [1, 5, 200] {
        assert_eq!(pages(&f, &one, size, None).await, of_many(&(1..=12).collect::<Vec<_>>()), "size {size}");
        let typed = format!("{one}&Filter.1.Name=instance-type&Filter.1.Value.1=t3.micro");
        assert_eq!(pages(&f, &typed, size, None).await, of_many(&[2, 4, 6, 8, 10, 12]), "size {size}");
        let range = format!("{one}&MinVersion=3&MaxVersion=9");
        assert_eq!(pages(&f, &range, size, None).await, of_many(&[3, 4, 5, 6, 7, 8, 9]), "size {size}");
        let named =
            format!("{one}&LaunchTemplateVersion.1=$Default&LaunchTemplateVersion.2=11&LaunchTemplateVersion.3=2");
        assert_eq!(pages(&f, &named, size, None).await, of_many(&[2, 4, 11]), "size {size}");
        // Without a template: each template's latest and default, in template order.
        let aliases = "&LaunchTemplateVersion.1=$Latest&LaunchTemplateVersion.2=$Default";
        let expected: Vec<(String, u64)> = templates
            .iter()
            .flat_map(|t| if *t == many { vec![(t.clone(), 4), (t.clone(), 12)] } else { vec![(t.clone(), 1)] })
            .collect();
        assert_eq!(pages(&f, aliases, size, None).await, expected, "size {size}");
    }
    // A version deleted after the first page of two: the walk goes on past it, once each.
    let delete = format!(
        "Action=DeleteLaunchTemplateVersions&Version=2016-11-15&LaunchTemplateId={many}&LaunchTemplateVersion.1=7"
    );
    let walked = pages(&f, &one, 2, Some(&delete)).await;
    assert_eq!(walked, of_many(&[1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]));
    // A token serves its query alone.
    let first = ok(&f, &format!("Action=DescribeLaunchTemplateVersions&Version=2016-11-15&MaxResults=2{one}")).await;
    let token = all(&first, "nextToken")[0].to_owned();
    let another = templates.iter().find(|t| **t != many).unwrap();
    let other = format!(
        "Action=DescribeLaunchTemplateVersions&Version=2016-11-15&MaxResults=2&LaunchTemplateId={another}&NextToken={token}"
    );
    let (status, answer) = call(&f, &other).await;
    assert_eq!((status, code(&answer)), (400, "InvalidParameterValue"), "{answer}");
    // A version named that the template lacks is refused.
    let (status, answer) =
        call(&f, &format!("Action=DescribeLaunchTemplateVersions&Version=2016-11-15{one}&LaunchTemplateVersion.1=7"))
            .await;
    assert_eq!((status, code(&answer)), (400, "InvalidLaunchTemplateId.VersionNotFound"), "{answer}");
}

/// The Describe actions that list through the shared path alone (`Describe::list`), each with
/// a way to make one more of its items and, where the action allows, to remove one.
#[derive(Clone, Copy, Debug)]
enum Shared {
    Images,
    Snapshots,
    InstanceStatus,
    CreditSpecifications,
    VolumesModifications,
    NatGateways,
}

/// What the items are made from: an image to launch and a subnet for NAT gateways.
struct Ground {
    ami: String,
    subnet: String,
}

impl Shared {
    const ALL: [Shared; 6] = [
        Shared::Images,
        Shared::Snapshots,
        Shared::InstanceStatus,
        Shared::CreditSpecifications,
        Shared::VolumesModifications,
        Shared::NatGateways,
    ];

    /// The action, the element each item has once, and what every query of it adds.
    fn parts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Shared::Images => ("DescribeImages", "imageId", ""),
            Shared::Snapshots => ("DescribeSnapshots", "snapshotId", "&Owner.1=self"),
            // Pending instances (no conductor runs) are listed when all are asked for.
            Shared::InstanceStatus => ("DescribeInstanceStatus", "instanceId", "&IncludeAllInstances=true"),
            Shared::CreditSpecifications => ("DescribeInstanceCreditSpecifications", "instanceId", ""),
            Shared::VolumesModifications => ("DescribeVolumesModifications", "volumeId", ""),
            Shared::NatGateways => ("DescribeNatGateways", "natGatewayId", ""),
        }
    }

    /// Filters a walk of it may use (none first), as form parameters.
    fn filters(self) -> &'static [&'static str] {
        match self {
            Shared::Images => &["", "&Filter.1.Name=tag:env&Filter.1.Value.1=prod"],
            Shared::Snapshots => &["", "&Filter.1.Name=tag:env&Filter.1.Value.1=prod&Filter.1.Value.2=dev"],
            Shared::InstanceStatus => &["", "&Filter.1.Name=instance-state-name&Filter.1.Value.1=pending"],
            Shared::CreditSpecifications => &[""],
            Shared::VolumesModifications => &["", "&Filter.1.Name=target-size&Filter.1.Value.1=3"],
            Shared::NatGateways => &["", "&Filter.1.Name=tag:env&Filter.1.Value.1=dev"],
        }
    }

    /// A volume the conductor has made, as snapshots and modifications need.
    async fn available_volume(f: &Fixture, rng: &mut StdRng) -> String {
        let volume = create_volume(f, rng).await;
        let account = f.state.backend.list_accounts().unwrap()[0].account_id.clone();
        f.state.backend.converge(&format!("{account}/{volume}")).unwrap();
        volume
    }

    /// One more item, tagged `env` at random where the action's items take tags: its id.
    async fn make(self, f: &Fixture, dir: &std::path::Path, ground: &Ground, rng: &mut StdRng) -> String {
        let env = ENVS[rng.gen_range(0..ENVS.len())];
        match self {
            Shared::Images => {
                let disk = dir.join(format!("disk-{}.qcow2", rng.gen::<u32>()));
                backend::disk::create_blank(&disk, None, 1 << 20).unwrap();
                let name = disk.file_stem().unwrap().to_string_lossy().into_owned();
                let new = backend::images::NewImage { name, disk: disk.to_string_lossy().into(), ..Default::default() };
                let admin = f.state.backend.list_accounts().unwrap()[0].account_id.clone();
                let id = f.state.backend.register_image(&admin, new).unwrap().id;
                ok(
                    f,
                    &format!("Action=CreateTags&Version=2016-11-15&ResourceId.1={id}&Tag.1.Key=env&Tag.1.Value={env}"),
                )
                .await;
                id
            }
            Shared::Snapshots => {
                let volume = Self::available_volume(f, rng).await;
                let body = format!("Action=CreateSnapshot&Version=2016-11-15&VolumeId={volume}&TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=env&TagSpecification.1.Tag.1.Value={env}");
                let id = all(&ok(f, &body).await, "snapshotId")[0].to_owned();
                // Completed, as the conductor would (a volume no instance holds takes its
                // snapshots as it converges): a snapshot being taken cannot be deleted.
                let account = f.state.backend.list_accounts().unwrap()[0].account_id.clone();
                f.state.backend.converge(&format!("{account}/{volume}")).unwrap();
                id
            }
            Shared::InstanceStatus | Shared::CreditSpecifications => {
                let body = format!(
                    "Action=RunInstances&Version=2016-11-15&ImageId={}&InstanceType=t3.nano&MinCount=1&MaxCount=1",
                    ground.ami
                );
                all(&ok(f, &body).await, "instanceId")[0].to_owned()
            }
            Shared::VolumesModifications => {
                let volume = Self::available_volume(f, rng).await;
                let size = rng.gen_range(3..5);
                ok(f, &format!("Action=ModifyVolume&Version=2016-11-15&VolumeId={volume}&Size={size}")).await;
                volume
            }
            Shared::NatGateways => {
                let address = ok(f, "Action=AllocateAddress&Version=2016-11-15&Domain=vpc").await;
                let allocation = &all(&address, "allocationId")[0];
                let body = format!("Action=CreateNatGateway&Version=2016-11-15&SubnetId={}&AllocationId={allocation}&TagSpecification.1.ResourceType=natgateway&TagSpecification.1.Tag.1.Key=env&TagSpecification.1.Tag.1.Value={env}", ground.subnet);
                all(&ok(f, &body).await, "natGatewayId")[0].to_owned()
            }
        }
    }

    /// Removes `id` where the action lets an item go (an instance terminated stays listed,
    /// as on EC2; a modification stays with its volume): whether it went.
    async fn remove(self, f: &Fixture, id: &str) -> bool {
        match self {
            Shared::Images => {
                ok(f, &format!("Action=DeregisterImage&Version=2016-11-15&ImageId={id}")).await;
                true
            }
            Shared::Snapshots => {
                ok(f, &format!("Action=DeleteSnapshot&Version=2016-11-15&SnapshotId={id}")).await;
                true
            }
            Shared::InstanceStatus | Shared::CreditSpecifications => {
                ok(f, &format!("Action=TerminateInstances&Version=2016-11-15&InstanceId.1={id}")).await;
                false
            }
            Shared::VolumesModifications => false,
            // A deleted NAT gateway stays listed for a while, as on EC2 (`deleted`).
            Shared::NatGateways => {
                ok(f, &format!("Action=DeleteNatGateway&Version=2016-11-15&NatGatewayId={id}")).await;
                false
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_path_pages_return_every_item_once_in_order_while_they_change() {
    for (kind, store, _db) in storage::testing::stores() {
        eprintln!("on {kind}");
        shared_walks_on(store).await;
    }
}

async fn shared_walks_on(store: storage::Store) {
    let (f, dir) = world_on(store);
    let mut rng = StdRng::seed_from_u64(27);
    let vpc = all(&ok(&f, "Action=CreateVpc&Version=2016-11-15&CidrBlock=10.0.0.0/16").await, "vpcId")[0].to_owned();
    let subnet = ok(&f, &format!("Action=CreateSubnet&Version=2016-11-15&VpcId={vpc}&CidrBlock=10.0.1.0/24")).await;
    // A public NAT gateway needs its VPC's internet gateway.
    let igw = ok(&f, "Action=CreateInternetGateway&Version=2016-11-15").await;
    let igw = all(&igw, "internetGatewayId")[0].to_owned();
    ok(&f, &format!("Action=AttachInternetGateway&Version=2016-11-15&InternetGatewayId={igw}&VpcId={vpc}")).await;
    let ground = Ground { ami: image(&f, dir.path()), subnet: all(&subnet, "subnetId")[0].to_owned() };
    for shared in Shared::ALL {
        let (action, element, always) = shared.parts();
        let mut live: Vec<String> = Vec::new();
        for _ in 0..12 {
            live.push(shared.make(&f, dir.path(), &ground, &mut rng).await);
        }
        let listing = |body: String| all(&body, element).into_iter().map(str::to_owned).collect::<BTreeSet<_>>();
        for (walk, filter) in
            shared.filters().iter().flat_map(|filter| [5usize, 7, 100].map(|n| (n, filter))).enumerate()
        {
            let (page_size, filter) = (filter.0, *filter.1);
            let query = format!("Action={action}&Version=2016-11-15{always}{filter}");
            let before = listing(ok(&f, &query).await);
            assert!(!before.is_empty() || !filter.is_empty(), "{action}: nothing listed");
            let (mut seen, mut token, mut created) = (Vec::<String>::new(), None::<String>, BTreeSet::new());
            loop {
                let next = token.as_ref().map(|t| format!("&NextToken={t}")).unwrap_or_default();
                let answer = ok(&f, &format!("{query}&MaxResults={page_size}{next}")).await;
                let mut page = all(&answer, element);
                page.dedup();
                assert!(page.len() <= page_size, "{action}: {} > {page_size}", page.len());
                seen.extend(page.into_iter().map(str::to_owned));
                // Between pages: one more, or one fewer.
                if rng.gen_bool(0.5) || live.is_empty() {
                    let made = shared.make(&f, dir.path(), &ground, &mut rng).await;
                    created.insert(made.clone());
                    live.push(made);
                } else {
                    let gone = live.remove(rng.gen_range(0..live.len()));
                    if !shared.remove(&f, &gone).await {
                        live.push(gone);
                    }
                }
                match all(&answer, "nextToken").first() {
                    Some(t) => token = Some(t.to_string()),
                    None => break,
                }
                assert!(seen.len() < 1000, "{action}: the walk does not end");
            }
            let after = listing(ok(&f, &query).await);
            assert_walk(
                &format!("{action} walk {walk} ({filter}, {page_size} a page)"),
                &seen,
                &before,
                &after,
                &created,
            );
        }
        // A token of this action's walk is refused for another query of it.
        let answer = ok(&f, &format!("Action={action}&Version=2016-11-15{always}&MaxResults=5")).await;
        let token = all(&answer, "nextToken")[0].to_owned();
        let other = format!(
            "Action={action}&Version=2016-11-15{always}{}&MaxResults=5&NextToken={token}",
            shared.filters().last().unwrap()
        );
        if shared.filters().len() > 1 {
            let (status, answer) = call(&f, &other).await;
            assert_eq!((status, code(&answer)), (400, "InvalidParameterValue"), "{action}: {answer}");
        }
    }
}
