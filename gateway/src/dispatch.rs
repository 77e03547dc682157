//! One exhaustive match from action to handler.

use ec2api::xml::XmlStruct;
use ec2api::{Action, Ec2Error};

use crate::context::Ctx;
use crate::handlers::*;

pub type Output = Box<dyn XmlStruct + Send>;

fn boxed<T: XmlStruct + Send + 'static>(result: Result<T, Ec2Error>) -> Result<Output, Ec2Error> {
    result.map(|output| Box::new(output) as Output)
}

pub async fn dispatch(ctx: &Ctx, action: Action) -> Result<Output, Ec2Error> {
    match action {
        Action::CopySnapshot(r) => boxed(copy_snapshot::handle(ctx, r).await),
        Action::CreateSnapshots(r) => boxed(create_snapshots::handle(ctx, r).await),
        Action::DescribeSnapshotAttribute(r) => boxed(describe_snapshot_attribute::handle(ctx, r).await),
        Action::ModifySnapshotAttribute(r) => boxed(modify_snapshot_attribute::handle(ctx, r).await),
        Action::ResetSnapshotAttribute(r) => boxed(reset_snapshot_attribute::handle(ctx, r).await),
        Action::CopyImage(r) => boxed(copy_image::handle(ctx, r).await),
        Action::ModifyImageAttribute(r) => boxed(modify_image_attribute::handle(ctx, r).await),
        Action::ResetImageAttribute(r) => boxed(reset_image_attribute::handle(ctx, r).await),
        Action::CreateLaunchTemplate(r) => boxed(create_launch_template::handle(ctx, r).await),
        Action::CreateLaunchTemplateVersion(r) => boxed(create_launch_template_version::handle(ctx, r).await),
        Action::DeleteLaunchTemplate(r) => boxed(delete_launch_template::handle(ctx, r).await),
        Action::DeleteLaunchTemplateVersions(r) => boxed(delete_launch_template_versions::handle(ctx, r).await),
        Action::DescribeLaunchTemplateVersions(r) => boxed(describe_launch_template_versions::handle(ctx, r).await),
        Action::DescribeLaunchTemplates(r) => boxed(describe_launch_templates::handle(ctx, r).await),
        Action::ModifyLaunchTemplate(r) => boxed(modify_launch_template::handle(ctx, r).await),
        Action::AssignPrivateIpAddresses(r) => boxed(assign_private_ip_addresses::handle(ctx, r).await),
        Action::AttachNetworkInterface(r) => boxed(attach_network_interface::handle(ctx, r).await),
        Action::CreateNetworkInterface(r) => boxed(create_network_interface::handle(ctx, r).await),
        Action::DeleteNetworkInterface(r) => boxed(delete_network_interface::handle(ctx, r).await),
        Action::DescribeNetworkInterfaceAttribute(r) => {
            boxed(describe_network_interface_attribute::handle(ctx, r).await)
        }
        Action::DetachNetworkInterface(r) => boxed(detach_network_interface::handle(ctx, r).await),
        Action::ModifyNetworkInterfaceAttribute(r) => boxed(modify_network_interface_attribute::handle(ctx, r).await),
        Action::UnassignPrivateIpAddresses(r) => boxed(unassign_private_ip_addresses::handle(ctx, r).await),
        Action::CreateNatGateway(r) => boxed(create_nat_gateway::handle(ctx, r).await),
        Action::DeleteNatGateway(r) => boxed(delete_nat_gateway::handle(ctx, r).await),
        Action::DescribeNatGateways(r) => boxed(describe_nat_gateways::handle(ctx, r).await),
        Action::AllocateAddress(r) => boxed(allocate_address::handle(ctx, r).await),
        Action::AssociateAddress(r) => boxed(associate_address::handle(ctx, r).await),
        Action::DescribeAddresses(r) => boxed(describe_addresses::handle(ctx, r).await),
        Action::DescribeAddressesAttribute(r) => boxed(describe_addresses_attribute::handle(ctx, r).await),
        Action::DisassociateAddress(r) => boxed(disassociate_address::handle(ctx, r).await),
        Action::ReleaseAddress(r) => boxed(release_address::handle(ctx, r).await),
        Action::AssociateRouteTable(r) => boxed(associate_route_table::handle(ctx, r).await),
        Action::AttachInternetGateway(r) => boxed(attach_internet_gateway::handle(ctx, r).await),
        Action::CreateDefaultSubnet(r) => boxed(create_default_subnet::handle(ctx, r).await),
        Action::CreateDefaultVpc(r) => boxed(create_default_vpc::handle(ctx, r).await),
        Action::CreateInternetGateway(r) => boxed(create_internet_gateway::handle(ctx, r).await),
        Action::CreateRoute(r) => boxed(create_route::handle(ctx, r).await),
        Action::CreateRouteTable(r) => boxed(create_route_table::handle(ctx, r).await),
        Action::CreateSubnet(r) => boxed(create_subnet::handle(ctx, r).await),
        Action::CreateVpc(r) => boxed(create_vpc::handle(ctx, r).await),
        Action::DeleteInternetGateway(r) => boxed(delete_internet_gateway::handle(ctx, r).await),
        Action::DeleteRoute(r) => boxed(delete_route::handle(ctx, r).await),
        Action::DeleteRouteTable(r) => boxed(delete_route_table::handle(ctx, r).await),
        Action::DeleteSubnet(r) => boxed(delete_subnet::handle(ctx, r).await),
        Action::DeleteVpc(r) => boxed(delete_vpc::handle(ctx, r).await),
        Action::DescribeDhcpOptions(r) => boxed(describe_dhcp_options::handle(ctx, r).await),
        Action::DescribeInternetGateways(r) => boxed(describe_internet_gateways::handle(ctx, r).await),
        Action::DescribeNetworkAcls(r) => boxed(describe_network_acls::handle(ctx, r).await),
        Action::DescribeRouteTables(r) => boxed(describe_route_tables::handle(ctx, r).await),
        Action::DetachInternetGateway(r) => boxed(detach_internet_gateway::handle(ctx, r).await),
        Action::DisassociateRouteTable(r) => boxed(disassociate_route_table::handle(ctx, r).await),
        Action::ModifySubnetAttribute(r) => boxed(modify_subnet_attribute::handle(ctx, r).await),
        Action::ModifyVpcAttribute(r) => boxed(modify_vpc_attribute::handle(ctx, r).await),
        Action::ReplaceRoute(r) => boxed(replace_route::handle(ctx, r).await),
        Action::ReplaceRouteTableAssociation(r) => boxed(replace_route_table_association::handle(ctx, r).await),
        Action::AttachVolume(r) => boxed(attach_volume::handle(ctx, r).await),
        Action::AuthorizeSecurityGroupEgress(r) => boxed(authorize_security_group_egress::handle(ctx, r).await),
        Action::AuthorizeSecurityGroupIngress(r) => boxed(authorize_security_group_ingress::handle(ctx, r).await),
        Action::CancelInstanceMigration(r) => boxed(cancel_instance_migration::handle(ctx, r).await),
        Action::CreateImage(r) => boxed(create_image::handle(ctx, r).await),
        Action::CreateKeyPair(r) => boxed(create_key_pair::handle(ctx, r).await),
        Action::CreateSecurityGroup(r) => boxed(create_security_group::handle(ctx, r).await),
        Action::CreateSnapshot(r) => boxed(create_snapshot::handle(ctx, r).await),
        Action::CreateTags(r) => boxed(create_tags::handle(ctx, r).await),
        Action::CreateVolume(r) => boxed(create_volume::handle(ctx, r).await),
        Action::DeleteKeyPair(r) => boxed(delete_key_pair::handle(ctx, r).await),
        Action::DeleteSecurityGroup(r) => boxed(delete_security_group::handle(ctx, r).await),
        Action::DeleteSnapshot(r) => boxed(delete_snapshot::handle(ctx, r).await),
        Action::DeleteTags(r) => boxed(delete_tags::handle(ctx, r).await),
        Action::DeleteVolume(r) => boxed(delete_volume::handle(ctx, r).await),
        Action::DeregisterImage(r) => boxed(deregister_image::handle(ctx, r).await),
        Action::DescribeAccountAttributes(r) => boxed(describe_account_attributes::handle(ctx, r).await),
        Action::DescribeAvailabilityZones(r) => boxed(describe_availability_zones::handle(ctx, r).await),
        Action::DescribeHosts(r) => boxed(describe_hosts::handle(ctx, r).await),
        Action::DescribeImageAttribute(r) => boxed(describe_image_attribute::handle(ctx, r).await),
        Action::DescribeImages(r) => boxed(describe_images::handle(ctx, r).await),
        Action::DescribeInstanceAttribute(r) => boxed(describe_instance_attribute::handle(ctx, r).await),
        Action::DescribeInstanceCreditSpecifications(r) => {
            boxed(describe_instance_credit_specifications::handle(ctx, r).await)
        }
        Action::DescribeInstanceMigrations(r) => boxed(describe_instance_migrations::handle(ctx, r).await),
        Action::DescribeInstanceStatus(r) => boxed(describe_instance_status::handle(ctx, r).await),
        Action::DescribeInstanceTypeOfferings(r) => boxed(describe_instance_type_offerings::handle(ctx, r).await),
        Action::DescribeInstanceTypes(r) => boxed(describe_instance_types::handle(ctx, r).await),
        Action::DescribeInstances(r) => boxed(describe_instances::handle(ctx, r).await),
        Action::DescribeKeyPairs(r) => boxed(describe_key_pairs::handle(ctx, r).await),
        Action::DescribeNetworkInterfaces(r) => boxed(describe_network_interfaces::handle(ctx, r).await),
        Action::DescribeRegions(r) => boxed(describe_regions::handle(ctx, r).await),
        Action::DescribeSecurityGroupRules(r) => boxed(describe_security_group_rules::handle(ctx, r).await),
        Action::DescribeSecurityGroups(r) => boxed(describe_security_groups::handle(ctx, r).await),
        Action::DescribeSnapshots(r) => boxed(describe_snapshots::handle(ctx, r).await),
        Action::DescribeSubnets(r) => boxed(describe_subnets::handle(ctx, r).await),
        Action::DescribeTags(r) => boxed(describe_tags::handle(ctx, r).await),
        Action::DescribeVolumes(r) => boxed(describe_volumes::handle(ctx, r).await),
        Action::DescribeVolumesModifications(r) => boxed(describe_volumes_modifications::handle(ctx, r).await),
        Action::DescribeVpcAttribute(r) => boxed(describe_vpc_attribute::handle(ctx, r).await),
        Action::DescribeVpcs(r) => boxed(describe_vpcs::handle(ctx, r).await),
        Action::DetachVolume(r) => boxed(detach_volume::handle(ctx, r).await),
        Action::GetConsoleOutput(r) => boxed(get_console_output::handle(ctx, r).await),
        Action::GetInstanceUefiData(r) => boxed(get_instance_uefi_data::handle(ctx, r).await),
        Action::ImportKeyPair(r) => boxed(import_key_pair::handle(ctx, r).await),
        Action::MigrateInstance(r) => boxed(migrate_instance::handle(ctx, r).await),
        Action::ModifyHosts(r) => boxed(modify_hosts::handle(ctx, r).await),
        Action::ModifyInstanceAttribute(r) => boxed(modify_instance_attribute::handle(ctx, r).await),
        Action::ModifyInstanceCreditSpecification(r) => {
            boxed(modify_instance_credit_specification::handle(ctx, r).await)
        }
        Action::ModifyInstanceMetadataOptions(r) => boxed(modify_instance_metadata_options::handle(ctx, r).await),
        Action::ModifyVolume(r) => boxed(modify_volume::handle(ctx, r).await),
        Action::RebootInstances(r) => boxed(reboot_instances::handle(ctx, r).await),
        Action::RegisterImage(r) => boxed(register_image::handle(ctx, r).await),
        Action::RevokeSecurityGroupEgress(r) => boxed(revoke_security_group_egress::handle(ctx, r).await),
        Action::RevokeSecurityGroupIngress(r) => boxed(revoke_security_group_ingress::handle(ctx, r).await),
        Action::RunInstances(r) => boxed(run_instances::handle(ctx, r).await),
        Action::StartInstances(r) => boxed(start_instances::handle(ctx, r).await),
        Action::StopInstances(r) => boxed(stop_instances::handle(ctx, r).await),
        Action::TerminateInstances(r) => boxed(terminate_instances::handle(ctx, r).await),
    }
}
