//! The ceiling: a bare hyper server on the same tokio runtime shape as Stratus, answering every
//! request with one fixed ~1 KB EC2-style XML body after reading the request whole. Nothing
//! is parsed, verified or stored: whatever a gateway does beyond this is its own cost.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A DescribeInstances answer for one instance, trimmed to about 1 KB.
pub const BODY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>8f7a2b1c-0d3e-4f5a-9b6c-7d8e9f0a1b2c</requestId><reservationSet><item><reservationId>r-0123456789abcdef0</reservationId><ownerId>123456789012</ownerId><groupSet/><instancesSet><item><instanceId>i-0123456789abcdef0</instanceId><imageId>ami-0123456789abcdef0</imageId><instanceState><code>16</code><name>running</name></instanceState><privateDnsName>ip-172-31-0-4.ec2.internal</privateDnsName><dnsName/><reason/><amiLaunchIndex>0</amiLaunchIndex><productCodes/><instanceType>t3.nano</instanceType><launchTime>2026-11-30T06:00:00.000Z</launchTime><placement><availabilityZone>us-east-1a</availabilityZone><tenancy>default</tenancy></placement><monitoring><state>disabled</state></monitoring><subnetId>subnet-0123456789abcdef0</subnetId><vpcId>vpc-0123456789abcdef0</vpcId><privateIpAddress>172.31.0.4</privateIpAddress><sourceDestCheck>true</sourceDestCheck><groupSet><item><groupId>sg-0123456789abcdef0</groupId><groupName>default</groupName></item></groupSet><architecture>x86_64</architecture><rootDeviceType>ebs</rootDeviceType><rootDeviceName>/dev/vda</rootDeviceName></item></instancesSet></item></reservationSet></DescribeInstancesResponse>"#;

pub async fn serve(listen: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("bare hyper server on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|request: hyper::Request<hyper::body::Incoming>| async move {
                // Read the body as a real server must before answering.
                let _ = request.into_body().collect().await;
                let mut response = hyper::Response::new(Full::new(Bytes::from_static(BODY.as_bytes())));
                response
                    .headers_mut()
                    .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/xml;charset=UTF-8"));
                Ok::<_, Infallible>(response)
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
