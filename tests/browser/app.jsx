// The page under test: the official React inbox, unchanged, pointed at Herald.
// Settings come from the query string: ?baseUrl=<herald root>&apiKey=…&userId=…
import React from 'react';
import { createRoot } from 'react-dom/client';
import { Engagespot } from '@engagespot/react-component';

const params = new URLSearchParams(window.location.search);

createRoot(document.getElementById('root')).render(
  <Engagespot
    apiKey={params.get('apiKey')}
    userId={params.get('userId')}
    baseUrl={params.get('baseUrl')}
    disableNotificationChime
  />,
);
