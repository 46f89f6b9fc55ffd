package storetest

// eventTests check topics, subscriptions, routing and streams.
var eventTests = []test{}

// eventTxTests check publishing and the inbox in a caller's transaction.
var eventTxTests = []test{}

// multiEventTests check events across two handles on one database.
var multiEventTests = []test{}
