//! Paging through Describe actions against a reference: across pages every matching resource
//! comes exactly once and in id order, whatever the page size and filters, while resources
//! are created and deleted between pages; tokens work only for the caller and the query they
//! were made for.

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
    let dir = tempfile::tempdir().unwrap();
    let cloud = FakeCloud::new();
    let mut config = HostConfig::new("fake://paging");
    config.accelerator = Some(Accelerator::Test);
    (config.vcpus, config.memory_mib) = (Some(4096), Some(1 << 22));
    let topology = Topology { hosts: vec![config.clone()], ..Topology::default() };
    let zone = topology.default_zone().to_owned();
    let pool = HostPool::new([Host::new(config, zone, cloud.host("fake://paging"))]);
    let backend = Backend::with_hosts(storage::Store::in_memory().unwrap(), topology, pool).with_data_dir(dir.path());
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
        let page = all(&answer, element);
        assert!(page.len() <= page_size, "{action}: {} > {page_size}", page.len());
        seen.extend(page.into_iter().map(str::to_owned));
        match all(&answer, "nextToken").first() {
            Some(t) => token = Some(t.to_string()),
            None => return seen,
        }
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
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "walk {walk} ({filter}): a volume came twice: {seen:?}");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "walk {walk}: not in id order");
        for id in before.intersection(&after) {
            assert!(
                unique.contains(id),
                "walk {walk} ({filter}, {page_size} a page): {id} was there throughout, not listed"
            );
        }
        for id in &seen {
            let existed = before.contains(id) || after.contains(id) || created.contains(id);
            assert!(
                existed,
                "walk {walk}: {id} was listed but matched neither before nor after, nor was made meanwhile"
            );
        }
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
