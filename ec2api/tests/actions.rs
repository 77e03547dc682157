//! Generated request decoding and response writing, through the public API.

use ec2api::query::Node;
use ec2api::xml::render_response;
use ec2api::Action;

fn decode(action: &str, pairs: &[(&str, &str)]) -> Result<Action, ec2api::Ec2Error> {
    Action::decode(action, &Node::parse(pairs.iter().copied())?)
}

#[test]
fn create_key_pair_with_tags_decodes_by_wire_names() {
    let action = decode(
        "CreateKeyPair",
        &[
            ("KeyName", "k1"),
            ("KeyType", "ed25519"),
            ("TagSpecification.1.ResourceType", "key-pair"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "web"),
            ("DryRun", "true"),
        ],
    )
    .unwrap();
    assert!(action.dry_run());
    let Action::CreateKeyPair(req) = action else { panic!("wrong action") };
    assert_eq!(req.key_name, "k1");
    assert_eq!(req.key_type.as_deref(), Some("ed25519"));
    let spec = &req.tag_specifications.unwrap()[0];
    assert_eq!(spec.resource_type.as_deref(), Some("key-pair"));
    let tag = &spec.tags.as_ref().unwrap()[0];
    assert_eq!((tag.key.as_deref(), tag.value.as_deref()), (Some("Name"), Some("web")));
}

#[test]
fn errors_name_the_parameter() {
    let err = decode("CreateKeyPair", &[]).unwrap_err();
    assert_eq!((err.code(), err.message()), ("MissingParameter", "The request must contain the parameter KeyName"));

    let err = decode("CreateKeyPair", &[("KeyName", "k"), ("TagSpecification.1.Tags.1.Key", "x")]).unwrap_err();
    assert_eq!(err.code(), "UnknownParameter");
    assert!(err.message().contains("TagSpecification.1.Tags.1.Key"), "{}", err.message());

    let err = decode("DescribeInstanceTypes", &[("MaxResults", "2")]).unwrap_err();
    assert_eq!(err.code(), "InvalidParameterValue");
    assert!(err.message().contains("MaxResults"));

    let err = decode("RunMagic", &[]).unwrap_err();
    assert_eq!(err.code(), "InvalidAction");
}

#[test]
fn import_key_pair_material_is_a_blob() {
    let Action::ImportKeyPair(req) =
        decode("ImportKeyPair", &[("KeyName", "k"), ("PublicKeyMaterial", "c3NoLWVkMjU1MTkgQUFBQQ==")]).unwrap()
    else {
        panic!("wrong action")
    };
    assert_eq!(req.public_key_material.0, b"ssh-ed25519 AAAA");
}

#[test]
fn outputs_use_location_names_and_item_lists() {
    let out = ec2api::DescribeKeyPairsOutput {
        key_pairs: Some(vec![ec2api::KeyPairInfo {
            key_name: Some("k1".into()),
            tags: Some(vec![]),
            ..Default::default()
        }]),
    };
    let body = String::from_utf8(render_response("DescribeKeyPairs", &out, "r")).unwrap();
    assert!(body.contains("<keySet><item><keyName>k1</keyName><tagSet/></item></keySet>"), "{body}");
}

#[test]
fn the_deepest_names_of_the_model_still_decode() {
    // Seven segments: the model's deepest (a launch template's instance requirements), so the
    // parser's bound is exactly the model's.
    let deepest = "LaunchTemplateData.InstanceRequirements.BaselinePerformanceFactors.Cpu.Reference.1.InstanceFamily";
    assert_eq!(deepest.split('.').count(), ec2api::MAX_PARAMETER_DEPTH);
    let required = [
        ("LaunchTemplateName", "web"),
        ("LaunchTemplateData.InstanceRequirements.VCpuCount.Min", "1"),
        ("LaunchTemplateData.InstanceRequirements.MemoryMiB.Min", "512"),
    ];
    let action = decode("CreateLaunchTemplate", &[required.as_slice(), &[(deepest, "m5")]].concat());
    assert!(action.is_ok(), "{action:?}");
    let deeper = format!("{deepest}.X");
    let err = decode("CreateLaunchTemplate", &[required.as_slice(), &[(deeper.as_str(), "x")]].concat()).unwrap_err();
    assert_eq!(err.code(), "UnknownParameter");
    // RunInstances' deepest, as before.
    let action = decode(
        "RunInstances",
        &[
            ("ImageId", "ami-1"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("NetworkInterface.1.DeviceIndex", "0"),
            ("NetworkInterface.1.PrivateIpAddresses.1.PrivateIpAddress", "10.0.0.9"),
        ],
    );
    assert!(action.is_ok(), "{action:?}");
}
