//! The instance's lease renewer (`bridge::lease_renewer`) against the real MongoDB: one round
//! renews every registered call's slot and owner leases across tenants, and nothing else; it
//! tells a call's keeper when the call's slot is gone or its tenant suspended; a call whose
//! registration is dropped, or whose call log names another owner, is not renewed.

use std::time::Duration;

use bson::{DateTime, Document, doc};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::mpsc::error::TryRecvError;
use voxbridge::bridge::lease_renewer::{LeaseNews, LeaseRenewer, RoundReport};
use voxbridge::domain::cluster::InstanceId;
use voxbridge::domain::ids::{CallId, TenantId};

use crate::helpers::TestApp;

const LEASE: Duration = Duration::from_secs(60);

/// The instance the tests' renewer renews for.
const HERE: &str = "instance-here";

fn renewer(app: &TestApp) -> LeaseRenewer {
    LeaseRenewer::new(app.storage.clone(), InstanceId::parse(HERE).unwrap(), LEASE)
}

/// Gives the call a slot and names `owner` as its bridge, both leased until `until`.
async fn hold(app: &TestApp, user_id: TenantId, call_id: CallId, owner: &str, until: DateTime) {
    app.storage
        .collection::<Document>("call_slots")
        .update_one(
            doc! { "_id": user_id },
            doc! {
                "$push": { "calls": { "call_id": call_id, "expires_at": until } },
                "$set": { "updated_at": DateTime::now() },
            },
        )
        .upsert(true)
        .await
        .expect("slot");
    set_owner(app, call_id, owner, until).await;
}

async fn set_owner(app: &TestApp, call_id: CallId, owner: &str, until: DateTime) {
    app.storage
        .collection::<Document>("call_logs")
        .update_one(
            doc! { "_id": call_id },
            doc! { "$set": { "owner": {
                "instance_id": owner, "started_at": DateTime::now(), "lease_until": until,
            } } },
        )
        .await
        .expect("owner");
}

/// The slot lease of `call_id` in the tenant's document, if it holds one.
async fn slot_lease(app: &TestApp, user_id: TenantId, call_id: CallId) -> Option<DateTime> {
    let slots = app
        .storage
        .collection::<Document>("call_slots")
        .find_one(doc! { "_id": user_id })
        .await
        .expect("read slots")?;
    slots
        .get_array("calls")
        .expect("calls")
        .iter()
        .filter_map(|entry| entry.as_document())
        .find(|entry| entry.get_object_id("call_id").ok() == Some(call_id.object_id()))
        .map(|entry| *entry.get_datetime("expires_at").expect("expires_at"))
}

async fn owner_lease(app: &TestApp, call_id: CallId) -> DateTime {
    let call = app
        .storage
        .collection::<Document>("call_logs")
        .find_one(doc! { "_id": call_id })
        .await
        .expect("read call")
        .expect("call exists");
    *call
        .get_document("owner")
        .expect("owner")
        .get_datetime("lease_until")
        .expect("lease_until")
}

fn soon() -> DateTime {
    DateTime::from_millis(DateTime::now().timestamp_millis() + 1_000)
}

/// Renewed: at least most of a lease ahead of now.
fn renewed(lease_until: DateTime) -> bool {
    lease_until.timestamp_millis() > DateTime::now().timestamp_millis() + 50_000
}

fn no_news(receiver: &mut UnboundedReceiver<LeaseNews>) -> bool {
    matches!(receiver.try_recv(), Err(TryRecvError::Empty))
}

#[tokio::test]
async fn one_round_renews_every_registered_call_and_tells_keepers_what_it_found() {
    let app = TestApp::spawn().await;
    let renewer = renewer(&app);
    let runtime = tokio::runtime::Handle::current();
    let (first_tenant, first_calls) = app.tenant_with_live_calls(3).await;
    let (second_tenant, second_calls) = app.tenant_with_live_calls(1).await;
    let until = soon();
    // Registered here: two of the first tenant's calls and the second tenant's call.
    for call_id in &first_calls[..2] {
        hold(&app, first_tenant, *call_id, HERE, until).await;
    }
    hold(&app, second_tenant, second_calls[0], HERE, until).await;
    // Not registered here: the first tenant's third call, bridged by another instance.
    let elsewhere = first_calls[2];
    hold(&app, first_tenant, elsewhere, "instance-there", until).await;
    // Registered here, but its slot is gone (released by mistake, or reaped).
    let (lost_tenant, lost_calls) = app.tenant_with_live_calls(1).await;
    set_owner(&app, lost_calls[0], HERE, until).await;

    let (_first_a, mut first_a) = renewer.register(first_tenant, first_calls[0], &runtime);
    let (_first_b, mut first_b) = renewer.register(first_tenant, first_calls[1], &runtime);
    let (second_registration, mut second) =
        renewer.register(second_tenant, second_calls[0], &runtime);
    let (_lost, mut lost) = renewer.register(lost_tenant, lost_calls[0], &runtime);

    let report = renewer.renew_all().await;
    assert_eq!(
        report,
        RoundReport {
            calls: 4,
            slots_missing: 1,
            owners_not_renewed: 0,
            suspended: 0,
            failures: 0,
        }
    );
    for (tenant, call_id) in [
        (first_tenant, first_calls[0]),
        (first_tenant, first_calls[1]),
        (second_tenant, second_calls[0]),
    ] {
        assert!(renewed(slot_lease(&app, tenant, call_id).await.unwrap()));
        assert!(renewed(owner_lease(&app, call_id).await));
    }
    assert!(renewed(owner_lease(&app, lost_calls[0]).await));
    // The other instance's call is left alone, and the lost slot is not made up here: its
    // keeper is told, and takes it back only if the tenant is under its limit.
    assert_eq!(slot_lease(&app, first_tenant, elsewhere).await, Some(until));
    assert_eq!(owner_lease(&app, elsewhere).await, until);
    assert_eq!(slot_lease(&app, lost_tenant, lost_calls[0]).await, None);
    assert_eq!(lost.try_recv(), Ok(LeaseNews::SlotMissing));
    assert!(no_news(&mut first_a) && no_news(&mut first_b) && no_news(&mut second));

    // The second tenant is suspended: its call's keeper is told, the first tenant's are not.
    app.storage
        .collection::<Document>("users")
        .update_one(
            doc! { "_id": second_tenant },
            doc! { "$set": { "status": "suspended" } },
        )
        .await
        .unwrap();
    let report = renewer.renew_all().await;
    assert_eq!(report.suspended, 1);
    assert_eq!(second.try_recv(), Ok(LeaseNews::TenantSuspended));
    assert!(no_news(&mut first_a) && no_news(&mut first_b));

    // A call whose keeper ended is no longer renewed.
    drop(second_registration);
    set_owner(&app, second_calls[0], HERE, until).await;
    let report = renewer.renew_all().await;
    assert_eq!(report.calls, 3);
    assert_eq!(owner_lease(&app, second_calls[0]).await, until);
}

#[tokio::test]
async fn a_call_log_naming_another_owner_is_not_renewed() {
    let app = TestApp::spawn().await;
    let renewer = renewer(&app);
    let runtime = tokio::runtime::Handle::current();
    let (tenant, calls) = app.tenant_with_live_calls(2).await;
    let until = soon();
    hold(&app, tenant, calls[0], HERE, until).await;
    // Taken over elsewhere while this instance still has it registered.
    hold(&app, tenant, calls[1], "instance-there", until).await;
    let _registrations: Vec<_> = calls
        .iter()
        .map(|call_id| renewer.register(tenant, *call_id, &runtime))
        .collect();

    let report = renewer.renew_all().await;
    assert_eq!(report.calls, 2);
    assert_eq!(report.owners_not_renewed, 1);
    assert!(renewed(owner_lease(&app, calls[0]).await));
    assert_eq!(owner_lease(&app, calls[1]).await, until);
}
