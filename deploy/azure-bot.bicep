// Azure Bot registration for clinicbot (Teams channel). Deploy with:
//   az deployment group create -g <rg> -f deploy/azure-bot.bicep \
//     -p botName=clinicbot-<clinic> appId=<Entra app id> tenantId=<tenant> endpoint=https://<public url>/api/messages
@description('Globally unique bot handle')
param botName string
@description('Entra application (client) id: the MicrosoftAppId setting')
param appId string
@description('Tenant of the app registration, for SingleTenant bots')
param tenantId string = subscription().tenantId
@allowed(['SingleTenant', 'MultiTenant'])
param appType string = 'SingleTenant'
@description('https://<CLINICBOT_PUBLIC_URL>/api/messages')
param endpoint string

resource bot 'Microsoft.BotService/botServices@2022-09-15' = {
  name: botName
  location: 'global'
  kind: 'azurebot'
  sku: { name: 'F0' }
  properties: {
    displayName: 'clinicbot'
    endpoint: endpoint
    msaAppId: appId
    msaAppType: appType
    msaAppTenantId: appType == 'SingleTenant' ? tenantId : null
  }
}

resource teams 'Microsoft.BotService/botServices/channels@2022-09-15' = {
  parent: bot
  name: 'MsTeamsChannel'
  location: 'global'
  properties: {
    channelName: 'MsTeamsChannel'
    properties: { isEnabled: true }
  }
}
