//! The wire error: an EC2 error code and a message shown to users verbatim.
//!
//! Every code Stratus answers with is a [`Code`]: its wire name and HTTP status are data in one
//! table, and each variant's doc says when it is answered. The request id is attached when the
//! envelope is rendered.

use std::borrow::Cow;
use std::fmt;

/// An EC2 error as it goes on the wire. Boxed so that `Result<T, Ec2Error>` stays small.
#[derive(Clone, PartialEq, Eq)]
pub struct Ec2Error(Box<Inner>);

#[derive(Clone, PartialEq, Eq)]
struct Inner {
    code: Code,
    message: String,
}

macro_rules! codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $wire:literal, $status:literal;)+) => {
        /// The error codes Stratus answers with, as EC2 names them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl Code {
            /// Every code, for tests that walk the table.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)+];

            /// The code as it goes on the wire (`InvalidInstanceID.NotFound`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $wire,)+
                }
            }

            /// The HTTP status EC2 answers the code with.
            pub fn status(self) -> u16 {
                match self {
                    $(Code::$variant => $status,)+
                }
            }
        }
    };
}

codes! {
    /// The access key is unknown, or the request is signed for a region Stratus does not serve.
    AuthFailure = "AuthFailure", 401;
    /// The request carries no signature at all.
    MissingAuthenticationToken = "MissingAuthenticationToken", 401;
    /// The signature is not the one the access key's secret gives.
    SignatureDoesNotMatch = "SignatureDoesNotMatch", 403;
    /// The signature's parts cannot be read.
    IncompleteSignature = "IncompleteSignature", 400;
    /// The request's time is too far from the server's, or a presigned URL has expired.
    RequestExpired = "RequestExpired", 400;
    /// The caller's account may not do this.
    UnauthorizedOperation = "UnauthorizedOperation", 403;
    /// `DryRun` was set and the request would have succeeded.
    DryRunOperation = "DryRunOperation", 412;
    /// The body is larger than `max_body_bytes`.
    RequestEntityTooLarge = "RequestEntityTooLarge", 413;
    /// The body did not arrive within `body_timeout_secs`.
    RequestTimeout = "RequestTimeout", 400;
    /// Anything unexpected; the cause is in the log, never on the wire.
    InternalError = "InternalError", 500;
    /// The caller's bucket (its account's, or its address's when unsigned) is empty.
    RequestLimitExceeded = "RequestLimitExceeded", 503;
    /// `Action` names no action Stratus serves.
    InvalidAction = "InvalidAction", 400;
    /// A required parameter is absent.
    MissingParameter = "MissingParameter", 400;
    /// A parameter the action does not have.
    UnknownParameter = "UnknownParameter", 400;
    /// A parameter's value is not acceptable.
    InvalidParameterValue = "InvalidParameterValue", 400;
    /// Parameters that cannot be given together.
    InvalidParameterCombination = "InvalidParameterCombination", 400;
    /// A parameter given without one it needs.
    InvalidParameterDependency = "InvalidParameterDependency", 400;
    /// A block device mapping Stratus cannot honour.
    InvalidBlockDeviceMapping = "InvalidBlockDeviceMapping", 400;
    /// An instance type that is not offered.
    InvalidInstanceType = "InvalidInstanceType", 400;
    /// An id of no known kind.
    InvalidId = "InvalidID", 400;
    /// What EC2 could do and Stratus does not.
    UnsupportedOperation = "UnsupportedOperation", 400;
    /// What the requested zone does not offer (an instance type its hosts cannot run).
    Unsupported = "Unsupported", 400;
    /// Hibernation, which Stratus instances do not do.
    UnsupportedHibernationConfiguration = "UnsupportedHibernationConfiguration", 400;
    /// An attribute of the resource forbids the operation.
    OperationNotPermitted = "OperationNotPermitted", 400;
    /// The account has not enabled EC2 serial console access.
    SerialConsoleAccessDisabled = "SerialConsoleAccessDisabled", 403;
    /// The server runs as many serial console sessions as it allows.
    SerialConsoleSessionLimitExceeded = "SerialConsoleSessionLimitExceeded", 400;
    /// The resource's state does not allow the operation.
    IncorrectState = "IncorrectState", 400;
    /// The instance's state does not allow the operation.
    IncorrectInstanceState = "IncorrectInstanceState", 400;
    /// The volume's modification state does not allow another one.
    IncorrectModificationState = "IncorrectModificationState", 400;
    /// Something still uses the resource.
    DependencyViolation = "DependencyViolation", 400;
    /// The resource is one that cannot be deleted (a default group).
    CannotDelete = "CannotDelete", 400;
    /// The volume is attached.
    VolumeInUse = "VolumeInUse", 400;
    /// The network interface is attached (or is an instance's own).
    InvalidNetworkInterfaceInUse = "InvalidNetworkInterface.InUse", 400;
    /// No network interface attachment of that id.
    InvalidAttachmentIdNotFound = "InvalidAttachmentID.NotFound", 400;
    /// The instance has as many attachments as it may.
    AttachmentLimitExceeded = "AttachmentLimitExceeded", 400;
    /// The interface would hold more private addresses than it may.
    PrivateIpAddressLimitExceeded = "PrivateIpAddressLimitExceeded", 400;
    /// Too many tags on one resource.
    TagLimitExceeded = "TagLimitExceeded", 400;
    /// Too many rules in one security group.
    RulesPerSecurityGroupLimitExceeded = "RulesPerSecurityGroupLimitExceeded", 400;
    /// A client token reused with other parameters.
    IdempotentParameterMismatch = "IdempotentParameterMismatch", 400;
    /// No host can hold the instances.
    InsufficientInstanceCapacity = "InsufficientInstanceCapacity", 400;
    /// The subnet has no free address.
    InsufficientFreeAddressesInSubnet = "InsufficientFreeAddressesInSubnet", 400;
    /// The private address asked for is taken.
    InvalidIpAddressInUse = "InvalidIPAddress.InUse", 400;
    /// Public key material that cannot be read.
    InvalidKeyFormat = "InvalidKey.Format", 400;
    /// A key pair of that name exists.
    InvalidKeyPairDuplicate = "InvalidKeyPair.Duplicate", 400;
    /// A security group of that name exists in the VPC.
    InvalidGroupDuplicate = "InvalidGroup.Duplicate", 400;
    /// The rule is in the group already.
    InvalidPermissionDuplicate = "InvalidPermission.Duplicate", 400;
    /// The rule is not in the group.
    InvalidPermissionNotFound = "InvalidPermission.NotFound", 400;
    /// An image of that name exists in the account.
    InvalidAmiNameDuplicate = "InvalidAMIName.Duplicate", 400;
    /// The image is not available (yet).
    InvalidAmiIdUnavailable = "InvalidAMIID.Unavailable", 400;
    /// The volume and the instance are in different zones.
    InvalidVolumeZoneMismatch = "InvalidVolume.ZoneMismatch", 400;
    /// The volume is not attached there.
    InvalidAttachmentNotFound = "InvalidAttachment.NotFound", 400;
    /// No instance of that id (in the caller's account).
    InvalidInstanceIdNotFound = "InvalidInstanceID.NotFound", 400;
    /// No image of that id the caller may see.
    InvalidAmiIdNotFound = "InvalidAMIID.NotFound", 400;
    /// No volume of that id.
    InvalidVolumeNotFound = "InvalidVolume.NotFound", 400;
    /// No snapshot of that id.
    InvalidSnapshotNotFound = "InvalidSnapshot.NotFound", 400;
    /// No security group of that id or name.
    InvalidGroupNotFound = "InvalidGroup.NotFound", 400;
    /// No security group rule of that id.
    InvalidSecurityGroupRuleIdNotFound = "InvalidSecurityGroupRuleId.NotFound", 400;
    /// No key pair of that name or id.
    InvalidKeyPairNotFound = "InvalidKeyPair.NotFound", 400;
    /// No VPC of that id.
    InvalidVpcIdNotFound = "InvalidVpcID.NotFound", 400;
    /// No subnet of that id.
    InvalidSubnetIdNotFound = "InvalidSubnetID.NotFound", 400;
    /// No network interface of that id.
    InvalidNetworkInterfaceIdNotFound = "InvalidNetworkInterfaceID.NotFound", 400;
    /// No reservation of that id.
    InvalidReservationIdNotFound = "InvalidReservationID.NotFound", 400;
    /// No host of that id.
    InvalidHostIdNotFound = "InvalidHostID.NotFound", 400;
    /// No pool host is free to dedicate to the account.
    InsufficientHostCapacity = "InsufficientHostCapacity", 400;
    /// The account's dedicated hosts have no room for the instance.
    InsufficientCapacityOnHost = "InsufficientCapacityOnHost", 400;
    /// An account id an image cannot be shared with.
    InvalidAmiAttributeItemValue = "InvalidAMIAttributeItemValue", 400;
    /// No launch template of that id.
    InvalidLaunchTemplateIdNotFound = "InvalidLaunchTemplateId.NotFound", 400;
    /// No launch template of that name (EC2 spells the code so).
    InvalidLaunchTemplateNameNotFound = "InvalidLaunchTemplateName.NotFoundException", 400;
    /// The launch template has no such version.
    InvalidLaunchTemplateVersionNotFound = "InvalidLaunchTemplateId.VersionNotFound", 400;
    /// The account has a launch template of that name.
    InvalidLaunchTemplateNameAlreadyExists = "InvalidLaunchTemplateName.AlreadyExistsException", 400;
    /// Not a launch template name EC2 accepts.
    InvalidLaunchTemplateNameMalformed = "InvalidLaunchTemplateName.MalformedException", 400;
    /// More launch templates or versions than an account may keep.
    LaunchTemplateLimitExceeded = "LaunchTemplateLimitExceeded", 400;
    /// No migration of that id.
    InvalidMigrationIdNotFound = "InvalidMigrationID.NotFound", 400;
    /// No internet gateway of that id.
    InvalidInternetGatewayIdNotFound = "InvalidInternetGatewayID.NotFound", 400;
    /// No route table of that id.
    InvalidRouteTableIdNotFound = "InvalidRouteTableID.NotFound", 400;
    /// No NAT gateway of that id.
    NatGatewayNotFound = "NatGatewayNotFound", 400;
    /// No network ACL of that id.
    InvalidNetworkAclIdNotFound = "InvalidNetworkAclID.NotFound", 400;
    /// No DHCP options set of that id.
    InvalidDhcpOptionIdNotFound = "InvalidDhcpOptionID.NotFound", 400;
    /// No route table association of that id.
    InvalidAssociationIdNotFound = "InvalidAssociationID.NotFound", 400;
    /// A VPC block of a size EC2 does not allow.
    InvalidVpcRange = "InvalidVpc.Range", 400;
    /// A subnet block outside its VPC or of a size EC2 does not allow.
    InvalidSubnetRange = "InvalidSubnet.Range", 400;
    /// A subnet block overlapping another subnet.
    InvalidSubnetConflict = "InvalidSubnet.Conflict", 400;
    /// The account has no default VPC to put the resource in.
    VpcIdNotSpecified = "VPCIdNotSpecified", 400;
    /// The account has a default VPC already.
    DefaultVpcAlreadyExists = "DefaultVpcAlreadyExists", 400;
    /// The zone has a default subnet already.
    DefaultSubnetAlreadyExistsInAvailabilityZone = "DefaultSubnetAlreadyExistsInAvailabilityZone", 400;
    /// The attachment or association exists already.
    ResourceAlreadyAssociated = "Resource.AlreadyAssociated", 400;
    /// The gateway is not attached to that VPC.
    GatewayNotAttached = "Gateway.NotAttached", 400;
    /// The table has a route for that destination.
    RouteAlreadyExists = "RouteAlreadyExists", 400;
    /// The table has no route for that destination.
    InvalidRouteNotFound = "InvalidRoute.NotFound", 400;
    /// No Elastic IP of that allocation id.
    InvalidAllocationIdNotFound = "InvalidAllocationID.NotFound", 400;
    /// No Elastic IP of that address held by the account.
    InvalidAddressNotFound = "InvalidAddress.NotFound", 400;
    /// The public address pool is used up.
    AddressLimitExceeded = "AddressLimitExceeded", 400;
    /// Not an instance id.
    InvalidInstanceIdMalformed = "InvalidInstanceID.Malformed", 400;
    /// Not an image id.
    InvalidAmiIdMalformed = "InvalidAMIID.Malformed", 400;
    /// Not a volume id.
    InvalidVolumeIdMalformed = "InvalidVolumeID.Malformed", 400;
    /// Not a snapshot id.
    InvalidSnapshotIdMalformed = "InvalidSnapshotID.Malformed", 400;
    /// Not a security group id.
    InvalidGroupIdMalformed = "InvalidGroupId.Malformed", 400;
    /// Not a security group rule id.
    InvalidSecurityGroupRuleIdMalformed = "InvalidSecurityGroupRuleId.Malformed", 400;
    /// Not a key pair id.
    InvalidKeyPairIdMalformed = "InvalidKeyPairId.Malformed", 400;
    /// Not a VPC id.
    InvalidVpcIdMalformed = "InvalidVpcID.Malformed", 400;
    /// Not a subnet id.
    InvalidSubnetIdMalformed = "InvalidSubnetID.Malformed", 400;
    /// Not a network interface id.
    InvalidNetworkInterfaceIdMalformed = "InvalidNetworkInterfaceID.Malformed", 400;
    /// Not a reservation id.
    InvalidReservationIdMalformed = "InvalidReservationID.Malformed", 400;
    /// Not a host id.
    InvalidHostIdMalformed = "InvalidHostID.Malformed", 400;
    /// Not a launch template id.
    InvalidLaunchTemplateIdMalformed = "InvalidLaunchTemplateId.Malformed", 400;
    /// Not a migration id.
    InvalidMigrationIdMalformed = "InvalidMigrationID.Malformed", 400;
    /// Not an internet gateway id.
    InvalidInternetGatewayIdMalformed = "InvalidInternetGatewayId.Malformed", 400;
    /// Not a route table id.
    InvalidRouteTableIdMalformed = "InvalidRouteTableId.Malformed", 400;
    /// Not a NAT gateway id.
    InvalidNatGatewayIdMalformed = "InvalidNatGatewayID.Malformed", 400;
    /// Not a network ACL id.
    InvalidNetworkAclIdMalformed = "InvalidNetworkAclID.Malformed", 400;
    /// Not an allocation id.
    InvalidAllocationIdMalformed = "InvalidAllocationID.Malformed", 400;
    /// Not a DHCP options set id.
    InvalidDhcpOptionsIdMalformed = "InvalidDhcpOptionsId.Malformed", 400;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Ec2Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self(Box::new(Inner { code, message: message.into() }))
    }

    /// The code as it goes on the wire.
    pub fn code(&self) -> &'static str {
        self.0.code.as_str()
    }

    pub fn kind(&self) -> Code {
        self.0.code
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    pub fn status(&self) -> u16 {
        self.0.code.status()
    }

    pub fn missing_parameter(name: &str) -> Self {
        Self::new(Code::MissingParameter, format!("The request must contain the parameter {}", echo(name)))
    }

    pub fn unknown_parameter(name: &str) -> Self {
        Self::new(Code::UnknownParameter, format!("The parameter {} is not recognized", echo(name)))
    }

    /// `InvalidParameterValue` naming the parameter, the value, and why it is wrong.
    pub fn invalid_value(name: &str, value: &str, why: &str) -> Self {
        Self::new(
            Code::InvalidParameterValue,
            format!("Value ({}) for parameter {} is invalid. {why}", echo(value), echo(name)),
        )
    }

    pub fn invalid_action(action: &str) -> Self {
        Self::new(Code::InvalidAction, format!("The action {action} is not valid for this web service."))
    }

    /// The answer to anything unexpected; the cause goes to the log, never to the wire.
    pub fn internal() -> Self {
        Self::new(
            Code::InternalError,
            "An internal error has occurred. Please try again; if it persists, contact your administrator.",
        )
    }
}

/// The longest piece of a request an error message repeats: enough to recognise it, never a
/// megabyte echoed back (or logged) because a client sent one.
const MAX_ECHO_CHARS: usize = 128;

/// `text` as an error message repeats it: cut at [`MAX_ECHO_CHARS`] with `...` after.
pub fn echo(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(MAX_ECHO_CHARS) {
        Some((cut, _)) => Cow::Owned(format!("{}...", &text[..cut])),
        None => Cow::Borrowed(text),
    }
}

impl fmt::Debug for Ec2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())
    }
}

impl fmt::Display for Ec2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for Ec2Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_comes_from_the_table() {
        assert_eq!(Ec2Error::new(Code::DryRunOperation, "").status(), 412);
        assert_eq!(Ec2Error::new(Code::RequestLimitExceeded, "").status(), 503);
        assert_eq!(Ec2Error::new(Code::AuthFailure, "").status(), 401);
        assert_eq!(Ec2Error::missing_parameter("KeyName").status(), 400);
        assert_eq!(Ec2Error::new(Code::InvalidKeyPairNotFound, "").code(), "InvalidKeyPair.NotFound");
    }

    #[test]
    fn wire_names_are_unique_and_shaped_like_ec2s() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!(code.as_str().chars().all(|c| c.is_ascii_alphabetic() || c == '.'), "{code}");
            assert!((400..600).contains(&code.status()), "{code}");
        }
    }

    #[test]
    fn messages_repeat_at_most_a_little_of_the_request() {
        let huge = "x".repeat(100_000);
        let err = Ec2Error::invalid_value(&huge, &huge, "Expected less.");
        assert!(err.message().len() < 400, "{}", err.message().len());
        assert!(Ec2Error::unknown_parameter(&huge).message().ends_with("... is not recognized"));
        assert_eq!(echo("ü".repeat(200).as_str()).chars().count(), MAX_ECHO_CHARS + 3);
    }

    #[test]
    fn messages_name_the_parameter() {
        assert_eq!(Ec2Error::missing_parameter("KeyName").message(), "The request must contain the parameter KeyName");
        assert!(Ec2Error::invalid_value("KeyType", "dsa", "Expected: rsa, ed25519.")
            .message()
            .contains("(dsa) for parameter KeyType"));
    }
}
