//! The one place where domain errors become EC2 codes.

use backend::{Error, ResourceKind};
use ec2api::error::echo;
use ec2api::{Code, Ec2Error};

/// The `…NotFound` and `….Malformed` codes EC2 uses for each kind of resource.
fn codes(kind: ResourceKind) -> (Code, Code) {
    match kind {
        ResourceKind::Instance => (Code::InvalidInstanceIdNotFound, Code::InvalidInstanceIdMalformed),
        ResourceKind::Image => (Code::InvalidAmiIdNotFound, Code::InvalidAmiIdMalformed),
        ResourceKind::Volume => (Code::InvalidVolumeNotFound, Code::InvalidVolumeIdMalformed),
        ResourceKind::Snapshot => (Code::InvalidSnapshotNotFound, Code::InvalidSnapshotIdMalformed),
        ResourceKind::SecurityGroup => (Code::InvalidGroupNotFound, Code::InvalidGroupIdMalformed),
        ResourceKind::SecurityGroupRule => {
            (Code::InvalidSecurityGroupRuleIdNotFound, Code::InvalidSecurityGroupRuleIdMalformed)
        }
        ResourceKind::KeyPair => (Code::InvalidKeyPairNotFound, Code::InvalidKeyPairIdMalformed),
        ResourceKind::Vpc => (Code::InvalidVpcIdNotFound, Code::InvalidVpcIdMalformed),
        ResourceKind::Subnet => (Code::InvalidSubnetIdNotFound, Code::InvalidSubnetIdMalformed),
        ResourceKind::NetworkInterface => {
            (Code::InvalidNetworkInterfaceIdNotFound, Code::InvalidNetworkInterfaceIdMalformed)
        }
        ResourceKind::Reservation => (Code::InvalidReservationIdNotFound, Code::InvalidReservationIdMalformed),
        ResourceKind::Host => (Code::InvalidHostIdNotFound, Code::InvalidHostIdMalformed),
        ResourceKind::Migration => (Code::InvalidMigrationIdNotFound, Code::InvalidMigrationIdMalformed),
        ResourceKind::InternetGateway => {
            (Code::InvalidInternetGatewayIdNotFound, Code::InvalidInternetGatewayIdMalformed)
        }
        ResourceKind::RouteTable => (Code::InvalidRouteTableIdNotFound, Code::InvalidRouteTableIdMalformed),
        ResourceKind::NatGateway => (Code::NatGatewayNotFound, Code::InvalidNatGatewayIdMalformed),
        ResourceKind::NetworkAcl => (Code::InvalidNetworkAclIdNotFound, Code::InvalidNetworkAclIdMalformed),
        ResourceKind::DhcpOptions => (Code::InvalidDhcpOptionIdNotFound, Code::InvalidDhcpOptionsIdMalformed),
        ResourceKind::ElasticIp => (Code::InvalidAllocationIdNotFound, Code::InvalidAllocationIdMalformed),
        ResourceKind::LaunchTemplate => (Code::InvalidLaunchTemplateIdNotFound, Code::InvalidLaunchTemplateIdMalformed),
    }
}

/// EC2's answer for ids (or key pair names) that name nothing the caller may see, worded as EC2
/// words it for each kind. Another account's resource gets exactly this answer too.
pub fn not_found<S: AsRef<str>>(kind: ResourceKind, ids: &[S]) -> Ec2Error {
    let list = ids.iter().map(|id| echo(id.as_ref()).into_owned()).collect::<Vec<_>>().join(", ");
    let several = ids.len() > 1;
    let message = match kind {
        ResourceKind::Instance if several => format!("The instance IDs '{list}' do not exist"),
        ResourceKind::Image => format!("The image id '[{list}]' does not exist"),
        ResourceKind::Volume => format!("The volume '{list}' does not exist."),
        ResourceKind::Snapshot => format!("The snapshot '{list}' does not exist."),
        ResourceKind::SecurityGroup => format!("The security group '{list}' does not exist"),
        ResourceKind::KeyPair => format!("The key pair '{list}' does not exist"),
        ResourceKind::NetworkInterface => format!("The networkInterface ID '{list}' does not exist"),
        ResourceKind::SecurityGroupRule => format!("The security group rule ID '{list}' does not exist"),
        ResourceKind::Host => format!("The host ID '{list}' does not exist"),
        ResourceKind::Vpc => format!("The vpc ID '{list}' does not exist"),
        ResourceKind::Subnet => format!("The subnet ID '{list}' does not exist"),
        ResourceKind::InternetGateway => format!("The internetGateway ID '{list}' does not exist"),
        ResourceKind::RouteTable => format!("The routeTable ID '{list}' does not exist"),
        ResourceKind::NatGateway => format!("NAT gateway {list} was not found"),
        ResourceKind::NetworkAcl => format!("The networkAcl ID '{list}' does not exist"),
        ResourceKind::DhcpOptions => format!("The dhcpOption ID '{list}' does not exist"),
        ResourceKind::ElasticIp => format!("The allocation ID '{list}' does not exist"),
        ResourceKind::LaunchTemplate if several => {
            "At least one of the launch templates specified in the request does not exist.".to_owned()
        }
        ResourceKind::LaunchTemplate => {
            format!("The specified launch template, with template ID {list}, does not exist.")
        }
        other => format!("The {} ID '{list}' does not exist", other.resource_type()),
    };
    Ec2Error::new(codes(kind).0, message)
}

/// EC2's answer for an id that is not an id of `kind` at all.
pub fn malformed(kind: ResourceKind, id: &str) -> Ec2Error {
    let message = match kind {
        ResourceKind::Instance => format!("Invalid id: \"{}\"", echo(id)),
        other => format!("Invalid id: \"{}\" (expecting \"{}...\")", echo(id), other.prefix()),
    };
    Ec2Error::new(codes(kind).1, message)
}

pub fn to_ec2(error: Error) -> Ec2Error {
    let message = error.to_string();
    match error {
        Error::KeyPairNotFound(_) => Ec2Error::new(Code::InvalidKeyPairNotFound, message),
        Error::KeyPairDuplicate(_) => Ec2Error::new(Code::InvalidKeyPairDuplicate, message),
        Error::InvalidKeyFormat(_) => Ec2Error::new(Code::InvalidKeyFormat, message),
        Error::ResourceNotFound { kind, id } => not_found(kind, &[id]),
        Error::SecurityGroupNameNotFound { .. } => Ec2Error::new(Code::InvalidGroupNotFound, message),
        Error::SecurityGroupDuplicate { .. } => Ec2Error::new(Code::InvalidGroupDuplicate, message),
        Error::PermissionDuplicate(_) => Ec2Error::new(Code::InvalidPermissionDuplicate, message),
        Error::PermissionNotFound(_) => Ec2Error::new(Code::InvalidPermissionNotFound, message),
        Error::RulesLimitExceeded => Ec2Error::new(Code::RulesPerSecurityGroupLimitExceeded, message),
        Error::DependencyViolation(_) => Ec2Error::new(Code::DependencyViolation, message),
        Error::CannotDelete(_) => Ec2Error::new(Code::CannotDelete, message),
        Error::MissingParameter(_) => Ec2Error::new(Code::MissingParameter, message),
        Error::IncorrectState(_) => Ec2Error::new(Code::IncorrectState, message),
        Error::VolumeInUse(_) => Ec2Error::new(Code::VolumeInUse, message),
        Error::ZoneMismatch(_) => Ec2Error::new(Code::InvalidVolumeZoneMismatch, message),
        Error::AttachmentNotFound(_) => Ec2Error::new(Code::InvalidAttachmentNotFound, message),
        Error::IncorrectModificationState(_) => Ec2Error::new(Code::IncorrectModificationState, message),
        Error::UnsupportedOperation(_) => Ec2Error::new(Code::UnsupportedOperation, message),
        Error::ParameterDependency(_) => Ec2Error::new(Code::InvalidParameterDependency, message),
        Error::ParameterCombination(_) => Ec2Error::new(Code::InvalidParameterCombination, message),
        Error::LaunchTemplateNameNotFound(_) => Ec2Error::new(Code::InvalidLaunchTemplateNameNotFound, message),
        Error::LaunchTemplateNameTaken(_) => Ec2Error::new(Code::InvalidLaunchTemplateNameAlreadyExists, message),
        Error::LaunchTemplateVersionNotFound { .. } => {
            Ec2Error::new(Code::InvalidLaunchTemplateVersionNotFound, message)
        }
        Error::LaunchTemplateLimit(_) => Ec2Error::new(Code::LaunchTemplateLimitExceeded, message),
        Error::InvalidAttributeItem { kind: ResourceKind::Image, .. } => {
            Ec2Error::new(Code::InvalidAmiAttributeItemValue, message)
        }
        Error::InvalidAttributeItem { .. } => Ec2Error::new(Code::InvalidParameterValue, message),
        Error::InsufficientHostCapacity(_) => Ec2Error::new(Code::InsufficientHostCapacity, message),
        Error::InsufficientCapacityOnHost(_) => Ec2Error::new(Code::InsufficientCapacityOnHost, message),
        Error::InvalidBlockDeviceMapping(_) => Ec2Error::new(Code::InvalidBlockDeviceMapping, message),
        Error::UnsupportedInZone { .. } => Ec2Error::new(Code::Unsupported, message),
        Error::MalformedId(_) => Ec2Error::new(Code::InvalidId, message),
        Error::VpcRange(_) => Ec2Error::new(Code::InvalidVpcRange, message),
        Error::SubnetRange(_) => Ec2Error::new(Code::InvalidSubnetRange, message),
        Error::SubnetConflict(_) => Ec2Error::new(Code::InvalidSubnetConflict, message),
        Error::NoDefaultVpc => Ec2Error::new(Code::VpcIdNotSpecified, message),
        Error::DefaultVpcExists => Ec2Error::new(Code::DefaultVpcAlreadyExists, message),
        Error::DefaultSubnetExists(_) => Ec2Error::new(Code::DefaultSubnetAlreadyExistsInAvailabilityZone, message),
        Error::AlreadyAssociated(_) => Ec2Error::new(Code::ResourceAlreadyAssociated, message),
        Error::GatewayNotAttached { .. } => Ec2Error::new(Code::GatewayNotAttached, message),
        Error::RouteAlreadyExists(_) => Ec2Error::new(Code::RouteAlreadyExists, message),
        Error::RouteNotFound { .. } => Ec2Error::new(Code::InvalidRouteNotFound, message),
        Error::AddressLimitExceeded => Ec2Error::new(Code::AddressLimitExceeded, message),
        Error::AddressNotFound(_) => Ec2Error::new(Code::InvalidAddressNotFound, message),
        Error::VpcWithoutGateway(_) => Ec2Error::new(Code::GatewayNotAttached, message),
        Error::AddressAssociated { .. } | Error::AddressInUseBy { .. } => {
            Ec2Error::new(Code::InvalidIpAddressInUse, message)
        }
        Error::InterfaceInUse(_) => Ec2Error::new(Code::InvalidNetworkInterfaceInUse, message),
        Error::AttachmentIdNotFound(_) => Ec2Error::new(Code::InvalidAttachmentIdNotFound, message),
        Error::AttachmentLimitExceeded(_) => Ec2Error::new(Code::AttachmentLimitExceeded, message),
        Error::AddressLimit(_) => Ec2Error::new(Code::PrivateIpAddressLimitExceeded, message),
        Error::AssociationNotFound(_) => Ec2Error::new(Code::InvalidAssociationIdNotFound, message),
        Error::InvalidParameter { .. } => Ec2Error::new(Code::InvalidParameterValue, message),
        Error::TagLimitExceeded(_) => Ec2Error::new(Code::TagLimitExceeded, message),
        Error::AlreadyExists(_) => Ec2Error::new(Code::InvalidParameterValue, message),
        Error::ImageNameDuplicate(_) => Ec2Error::new(Code::InvalidAmiNameDuplicate, message),
        Error::ImageUnavailable(_) => Ec2Error::new(Code::InvalidAmiIdUnavailable, message),
        Error::NotImageOwner(_) | Error::NotSnapshotOwner(_) => Ec2Error::new(Code::AuthFailure, message),
        Error::InsufficientCapacity(_) => Ec2Error::new(Code::InsufficientInstanceCapacity, message),
        Error::IdempotentParameterMismatch(_) => Ec2Error::new(Code::IdempotentParameterMismatch, message),
        Error::AddressesExhausted(_) => Ec2Error::new(Code::InsufficientFreeAddressesInSubnet, message),
        Error::AddressInUse(_) => Ec2Error::new(Code::InvalidIpAddressInUse, message),
        Error::IncorrectInstanceState { .. } => Ec2Error::new(Code::IncorrectInstanceState, message),
        Error::MigrationFinished { .. } => Ec2Error::new(Code::IncorrectState, message),
        Error::OperationNotPermitted(_) => Ec2Error::new(Code::OperationNotPermitted, message),
        Error::SerialConsoleAccessDisabled => Ec2Error::new(Code::SerialConsoleAccessDisabled, message),
        Error::SerialConsoleSessionLimit => Ec2Error::new(Code::SerialConsoleSessionLimitExceeded, message),
        Error::HostGone(_) | Error::Driver(_) | Error::Io(_) => {
            tracing::error!(cause = %message, "host or file operation failed");
            Ec2Error::internal()
        }
        Error::Storage(cause) => {
            tracing::error!(%cause, "storage failed");
            Ec2Error::internal()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_and_malformed_speak_as_ec2_does() {
        assert_eq!(not_found(ResourceKind::Instance, &["i-1"]).message(), "The instance ID 'i-1' does not exist");
        assert_eq!(
            not_found(ResourceKind::Instance, &["i-1", "i-2"]).message(),
            "The instance IDs 'i-1, i-2' do not exist"
        );
        assert_eq!(not_found(ResourceKind::Volume, &["vol-1"]).message(), "The volume 'vol-1' does not exist.");
        assert_eq!(not_found(ResourceKind::Image, &["ami-1"]).message(), "The image id '[ami-1]' does not exist");
        assert_eq!(not_found(ResourceKind::Vpc, &["vpc-1"]).code(), "InvalidVpcID.NotFound");
        let bad = malformed(ResourceKind::Volume, "disk");
        assert_eq!(
            (bad.code(), bad.message()),
            ("InvalidVolumeID.Malformed", "Invalid id: \"disk\" (expecting \"vol-...\")")
        );
        assert_eq!(malformed(ResourceKind::Instance, "x").message(), "Invalid id: \"x\"");
        // EC2 names a missing NAT gateway without the dot.
        assert_eq!(not_found(ResourceKind::NatGateway, &["nat-1"]).code(), "NatGatewayNotFound");
        for kind in ResourceKind::ALL.iter().filter(|k| **k != ResourceKind::NatGateway) {
            assert!(not_found(*kind, &["x"]).code().ends_with(".NotFound"), "{kind:?}");
            assert!(malformed(*kind, "x").code().ends_with(".Malformed"), "{kind:?}");
        }
        assert_eq!(malformed(ResourceKind::NatGateway, "x").code(), "InvalidNatGatewayID.Malformed");
    }

    #[test]
    fn codes_clients_depend_on() {
        let nf = to_ec2(Error::ResourceNotFound { kind: ResourceKind::Instance, id: "i-1".into() });
        assert_eq!(nf.code(), "InvalidInstanceID.NotFound");
        assert_eq!(to_ec2(Error::KeyPairNotFound("k".into())).message(), "The key pair 'k' does not exist");
        assert_eq!(to_ec2(Error::KeyPairDuplicate("k".into())).code(), "InvalidKeyPair.Duplicate");
        let internal = to_ec2(Error::Storage(storage::Error::Db("disk on fire".into())));
        assert_eq!(internal.code(), "InternalError");
        assert!(!internal.message().contains("disk"), "causes stay in the log");
        let state = Error::IncorrectInstanceState { id: "i-1".into(), state: "pending", verb: "stopped" };
        assert_eq!(to_ec2(state).code(), "IncorrectInstanceState");
        assert_eq!(to_ec2(Error::InsufficientCapacity("t3.micro".into())).code(), "InsufficientInstanceCapacity");
        assert_eq!(to_ec2(Error::ImageUnavailable("ami-1".into())).code(), "InvalidAMIID.Unavailable");
        let driver = to_ec2(Error::Driver(backend::hypervisor::DriverError::Failed("qemu exploded".into())));
        assert_eq!(driver.code(), "InternalError");
        assert!(!driver.message().contains("qemu"));
    }
}
