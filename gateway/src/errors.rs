//! The one place where domain errors become EC2 codes.

use backend::{Error, ResourceKind};
use ec2api::Ec2Error;

/// The `…NotFound` code EC2 uses for a missing resource of each kind.
fn not_found_code(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Instance => "InvalidInstanceID.NotFound",
        ResourceKind::Image => "InvalidAMIID.NotFound",
        ResourceKind::Volume => "InvalidVolume.NotFound",
        ResourceKind::Snapshot => "InvalidSnapshot.NotFound",
        ResourceKind::SecurityGroup => "InvalidGroup.NotFound",
        ResourceKind::SecurityGroupRule => "InvalidSecurityGroupRuleId.NotFound",
        ResourceKind::KeyPair => "InvalidKeyPair.NotFound",
        ResourceKind::Vpc => "InvalidVpcID.NotFound",
        ResourceKind::Subnet => "InvalidSubnetID.NotFound",
        ResourceKind::NetworkInterface => "InvalidNetworkInterfaceID.NotFound",
        ResourceKind::Reservation => "InvalidReservationID.NotFound",
        ResourceKind::Host => "InvalidHostID.NotFound",
        ResourceKind::Migration => "InvalidMigrationID.NotFound",
    }
}

pub fn to_ec2(error: Error) -> Ec2Error {
    let message = error.to_string();
    match error {
        Error::KeyPairNotFound(_) => Ec2Error::new("InvalidKeyPair.NotFound", message),
        Error::KeyPairDuplicate(_) => Ec2Error::new("InvalidKeyPair.Duplicate", message),
        Error::InvalidKeyFormat(_) => Ec2Error::new("InvalidKey.Format", message),
        Error::ResourceNotFound { kind, id } => {
            Ec2Error::new(not_found_code(kind), format!("The {} ID '{id}' does not exist", kind.resource_type()))
        }
        Error::SecurityGroupNameNotFound { .. } => Ec2Error::new("InvalidGroup.NotFound", message),
        Error::SecurityGroupDuplicate { .. } => Ec2Error::new("InvalidGroup.Duplicate", message),
        Error::PermissionDuplicate(_) => Ec2Error::new("InvalidPermission.Duplicate", message),
        Error::PermissionNotFound(_) => Ec2Error::new("InvalidPermission.NotFound", message),
        Error::RulesLimitExceeded => Ec2Error::new("RulesPerSecurityGroupLimitExceeded", message),
        Error::DependencyViolation(_) => Ec2Error::new("DependencyViolation", message),
        Error::CannotDelete(_) => Ec2Error::new("CannotDelete", message),
        Error::MissingParameter(_) => Ec2Error::new("MissingParameter", message),
        Error::IncorrectState(_) => Ec2Error::new("IncorrectState", message),
        Error::VolumeInUse(_) => Ec2Error::new("VolumeInUse", message),
        Error::ZoneMismatch(_) => Ec2Error::new("InvalidVolume.ZoneMismatch", message),
        Error::AttachmentNotFound(_) => Ec2Error::new("InvalidAttachment.NotFound", message),
        Error::IncorrectModificationState(_) => Ec2Error::new("IncorrectModificationState", message),
        Error::UnsupportedOperation(_) => Ec2Error::new("UnsupportedOperation", message),
        Error::MalformedId(_) => Ec2Error::new("InvalidID", message),
        Error::InvalidParameter { .. } => Ec2Error::new("InvalidParameterValue", message),
        Error::TagLimitExceeded(_) => Ec2Error::new("TagLimitExceeded", message),
        Error::AlreadyExists(_) => Ec2Error::new("InvalidParameterValue", message),
        Error::ImageNameDuplicate(_) => Ec2Error::new("InvalidAMIName.Duplicate", message),
        Error::ImageUnavailable(_) => Ec2Error::new("InvalidAMIID.Unavailable", message),
        Error::NotImageOwner(_) => Ec2Error::new("AuthFailure", message),
        Error::InsufficientCapacity(_) => Ec2Error::new("InsufficientInstanceCapacity", message),
        Error::IdempotentParameterMismatch(_) => Ec2Error::new("IdempotentParameterMismatch", message),
        Error::AddressesExhausted(_) => Ec2Error::new("InsufficientFreeAddressesInSubnet", message),
        Error::AddressInUse(_) => Ec2Error::new("InvalidIPAddress.InUse", message),
        Error::IncorrectInstanceState { .. } => Ec2Error::new("IncorrectInstanceState", message),
        Error::MigrationFinished { .. } => Ec2Error::new("IncorrectState", message),
        Error::OperationNotPermitted(_) => Ec2Error::new("OperationNotPermitted", message),
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
